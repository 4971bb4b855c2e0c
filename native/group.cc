// A legacy VFIO group (/dev/vfio/<group>): status, joining a container (or an iommufd, with
// IOMMUFD_VFIO_CONTAINER), and the device fds it hands out, which are never blocked.
#include "common.h"

namespace vfio {

namespace {

using Group = FdHandle;

Group* Get(const Napi::CallbackInfo& info) { return OpenFdArg(info, 0, Kind::Group, "group"); }

// (group) => flags (VIABLE=1, CONTAINER_SET=2)
Napi::Value Status(const Napi::CallbackInfo& info) {
  vfio_group_status s{sizeof(vfio_group_status), 0};
  Call<Ioctl::VFIO_GROUP_GET_STATUS>(info.Env(), Get(info), &s);
  return Napi::Number::New(info.Env(), s.flags);
}

// (group, container handle | iommufd handle)
Napi::Value SetContainer(const Napi::CallbackInfo& info) {
  Group* g = Get(info);
  Kind kind = HasKind(info.Env(), info[1], Kind::Iommufd) ? Kind::Iommufd : Kind::Container;
  int32_t fd = OpenFdArg(info, 1, kind, "container")->fd;
  Call<Ioctl::VFIO_GROUP_SET_CONTAINER>(info.Env(), g, &fd);
  return Napi::Value();
}

Napi::Value UnsetContainer(const Napi::CallbackInfo& info) {
  Call<Ioctl::VFIO_GROUP_UNSET_CONTAINER>(info.Env(), Get(info), nullptr);
  return Napi::Value();
}

// (group, name) => device handle (owned; the fd is never blocked)
Napi::Value GetDevice(const Napi::CallbackInfo& info) {
  Group* g = Get(info);
  std::string name = ArgString(info, 1, "name");
  int fd = Call<Ioctl::VFIO_GROUP_GET_DEVICE_FD>(info.Env(), g, const_cast<char*>(name.c_str()));
  return NewFdHandle(info.Env(), fd, Kind::Device, name);
}

}  // namespace

void InitGroup(Napi::Env env, Napi::Object exports) {
  Export(env, exports, "groupOpen", FdOpenAs<Kind::Group>);
  Export(env, exports, "groupClose", FdCloseAs<Kind::Group>);
  Export(env, exports, "groupFd", FdNumberAs<Kind::Group>);
  Export(env, exports, "groupStatus", Status);
  Export(env, exports, "groupSetContainer", SetContainer);
  Export(env, exports, "groupUnsetContainer", UnsetContainer);
  Export(env, exports, "groupGetDevice", GetDevice);
}

}  // namespace vfio
