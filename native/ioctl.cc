// The ioctl helpers (see ioctl.h) and the table's export to JS.
#include "ioctl.h"

#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>

#include "addon.h"
#include "errors.h"

namespace vfio {

int CallIoctl(Napi::Env env, const FdHandle* h, Ioctl i, void* arg) {
  int r = ioctl(h->fd, Info(i).number, arg);
  if (r < 0) {
    int err = errno;
    ThrowErrno(env, err, "ioctl", Info(i).name, h->path);
  }
  return r;
}

int CallIoctlValue(Napi::Env env, const FdHandle* h, Ioctl i, unsigned long value) {
  int r = ioctl(h->fd, Info(i).number, value);
  if (r < 0) {
    int err = errno;
    ThrowErrno(env, err, "ioctl", Info(i).name, h->path);
  }
  return r;
}

std::vector<uint8_t> GrowAndRetry(Napi::Env env, const FdHandle* h, Ioctl i, size_t size, int tooSmall,
                                  void (*prepare)(std::vector<uint8_t>& buf, uint32_t arg), uint32_t arg,
                                  size_t (*need)(const std::vector<uint8_t>& buf)) {
  std::vector<uint8_t> buf;
  for (int attempt = 0; attempt < 4; attempt++) {
    buf.assign(size, 0);
    prepare(buf, arg);
    int err = ioctl(h->fd, Info(i).number, buf.data()) < 0 ? errno : 0;
    if (err && (tooSmall == 0 || err != tooSmall)) ThrowErrno(env, err, "ioctl", Info(i).name, h->path);
    size_t wanted = need(buf);
    if (!err && wanted <= buf.size()) return buf;
    size = wanted > buf.size() ? wanted : buf.size() * 2;
  }
  // The kernel's answer kept growing (a device changing under us, or a kernel bug): fail rather
  // than hand back a truncated, zero-filled answer.
  ThrowErrno(env, EMSGSIZE, "ioctl", Info(i).name, h->path);
}

void PrepareArgsz(std::vector<uint8_t>& buf, uint32_t) {
  uint32_t argsz = static_cast<uint32_t>(buf.size());
  memcpy(buf.data(), &argsz, 4);
}

size_t ArgszNeed(const std::vector<uint8_t>& buf) {
  uint32_t need;
  memcpy(&need, buf.data(), 4);
  return need;
}

Napi::Value ToUint8Array(Napi::Env env, const std::vector<uint8_t>& buf) {
  auto out = Napi::Uint8Array::New(env, buf.size());
  memcpy(out.Data(), buf.data(), buf.size());
  return out;
}

void InitIoctlTable(Napi::Env env, Napi::Object exports) {
  auto table = Napi::Object::New(env);
  for (const IoctlInfo& row : kIoctls) table.Set(row.name, Napi::Number::New(env, static_cast<double>(row.number)));
  table.Freeze();
  exports.Set("ioctls", table);
}

}  // namespace vfio
