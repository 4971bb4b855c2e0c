// The ioctl helpers (see ioctl.h) and the table's export to JS.
#include "ioctl.h"

#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>

#include "addon.h"
#include "args.h"
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

Napi::Value RawIoctl(const Napi::CallbackInfo& info, const FdHandle* h) {
  Napi::Env env = info.Env();
  double d = ArgNumber(info, 1, "request");
  if (!(d >= 0 && d <= 4294967295.0) || static_cast<double>(static_cast<uint32_t>(d)) != d) {
    ThrowRange(env, "request must be an integer from 0 to 2^32-1");
  }
  auto request = static_cast<unsigned long>(d);
  for (const IoctlInfo& row : kIoctls) {
    if (row.number == request) {
      ThrowType(env,
                std::string("request ") + std::to_string(request) + " is " + row.name +
                    ", which the library wraps: use its own call (the raw ioctl is for requests it does not wrap yet)");
    }
  }
  Bytes arg = ArgBytes(info, 2, "arg");
  uint32_t size = 0;
  if (arg.length >= 4) memcpy(&size, arg.data, 4);
  if (arg.length < 4 || size < 4 || size > arg.length) {
    ThrowRange(env, "arg must start with the struct's own size (argsz/size, a u32) and hold that many bytes (" +
                        std::to_string(size) + " > " + std::to_string(arg.length) + ")");
  }
  int r = ioctl(h->fd, request, arg.data);
  if (r < 0) {
    int err = errno;
    ThrowErrno(env, err, "ioctl", nullptr, h->path);
  }
  return Napi::Number::New(env, r);
}

void InitIoctlTable(Napi::Env env, Napi::Object exports) {
  auto table = Napi::Object::New(env);
  for (const IoctlInfo& row : kIoctls) table.Set(row.name, Napi::Number::New(env, static_cast<double>(row.number)));
  table.Freeze();
  exports.Set("ioctls", table);
}

}  // namespace vfio
