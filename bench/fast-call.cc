// The performance issue's evaluation of V8's fast API calls (v8-fast-api-calls.h), bench-only:
// the same three hot shapes as the addon (the floor, one syscall, one MMIO write32) made three
// ways, so the bench can print what a fast call would save per crossing:
//   - `fast*`: a V8 FunctionTemplate with a CFunction fast path (what Node's own bindings use);
//   - `slow*`: the same V8 FunctionTemplate without one (V8's API, no N-API in between);
//   - the addon's N-API calls, measured by bench.mjs as they are.
// The write32 does what the addon's MappedRegion.write32 does (mapping.cc): the range and
// alignment check, the shared access lock and the suspended flag, Linux's writel barrier, one
// volatile store; a bad offset makes the fast path fall back to the slow one, which throws.
// Built by bench/run.mjs only when a v8-fast-api-calls.h for exactly this V8 is at hand (Node does
// not ship it; see bench/README.md). It uses V8's C++ API, so it is bound to one V8 build.
#include <node.h>
#include <unistd.h>
#include <v8-fast-api-calls.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>

namespace {

// The window a write32 targets: a BAR mapping the library made, handed over as its ArrayBuffer.
struct Window {
  std::shared_ptr<v8::BackingStore> store;
  uint8_t* base = nullptr;
  size_t length = 0;
  std::shared_mutex access;
  bool suspended = false;
  double slowCalls = 0;  // calls that took a slow callback (proves the fast path ran)
  v8::Global<v8::Object> self;
};

inline void BeforeMmioWrite() {
#if defined(__aarch64__)
  asm volatile("dmb oshst" ::: "memory");
#else
  asm volatile("" ::: "memory");
#endif
}

Window* From(v8::Local<v8::Object> receiver) {
  return static_cast<Window*>(receiver->GetAlignedPointerFromInternalField(0));
}

Window* From(const v8::FunctionCallbackInfo<v8::Value>& info) {
  Window* w = From(info.This());
  w->slowCalls++;
  return w;
}

bool InRange(const Window* w, double offset) {
  return w->length >= 4 && offset >= 0 && offset <= static_cast<double>(w->length) - 4 &&
         static_cast<double>(static_cast<size_t>(offset)) == offset && static_cast<size_t>(offset) % 4 == 0;
}

// true if written; false if the window is suspended (the addon's EIO case)
bool Store32(Window* w, size_t offset, uint32_t value) {
  std::shared_lock<std::shared_mutex> lock(w->access);
  if (w->suspended || w->base == nullptr) return false;
  BeforeMmioWrite();
  *reinterpret_cast<volatile uint32_t*>(w->base + offset) = value;
  return true;
}

void Throw(v8::Isolate* isolate, const char* message, bool range) {
  v8::Local<v8::String> text = v8::String::NewFromUtf8(isolate, message).ToLocalChecked();
  isolate->ThrowException(range ? v8::Exception::RangeError(text) : v8::Exception::TypeError(text));
}

void SlowNoop(const v8::FunctionCallbackInfo<v8::Value>& info) { From(info); }
void FastNoop(v8::Local<v8::Object>) {}

void SlowGetppid(const v8::FunctionCallbackInfo<v8::Value>& info) {
  From(info);
  info.GetReturnValue().Set(static_cast<double>(getppid()));
}
double FastGetppid(v8::Local<v8::Object>) { return getppid(); }

void SlowWrite32(const v8::FunctionCallbackInfo<v8::Value>& info) {
  Window* w = From(info);
  if (info.Length() < 2 || !info[0]->IsNumber() || !info[1]->IsNumber())
    return Throw(info.GetIsolate(), "write32(offset, value): numbers", false);
  double offset = info[0].As<v8::Number>()->Value();
  double value = info[1].As<v8::Number>()->Value();
  if (!InRange(w, offset)) return Throw(info.GetIsolate(), "offset is outside the mapping or not aligned to 4", true);
  if (!(value >= 0 && value <= 4294967295.0) || static_cast<double>(static_cast<uint32_t>(value)) != value) {
    return Throw(info.GetIsolate(), "value is not a u32", true);
  }
  if (!Store32(w, static_cast<size_t>(offset), static_cast<uint32_t>(value)))
    return Throw(info.GetIsolate(), "the mapping is suspended", false);
}
// The arguments come as doubles and are checked here as the slow path checks them (a uint32_t
// argument, even with kEnforceRange, would truncate 1.5 to 1); anything else, a non-number among
// it, makes V8 take the slow path, which throws.
void FastWrite32(v8::Local<v8::Object> receiver, double offset, double value, v8::FastApiCallbackOptions& options) {
  Window* w = From(receiver);
  if (!InRange(w, offset) || !(value >= 0 && value <= 4294967295.0) ||
      static_cast<double>(static_cast<uint32_t>(value)) != value ||
      !Store32(w, static_cast<size_t>(offset), static_cast<uint32_t>(value))) {
    options.fallback = true;
  }
}

// Drops the mapping (the bench closes its device after it): the window is empty from then on, so
// every write falls back to the slow path, which throws RangeError.
void Close(const v8::FunctionCallbackInfo<v8::Value>& info) {
  Window* w = From(info.This());
  std::unique_lock<std::shared_mutex> lock(w->access);
  w->store.reset();
  w->base = nullptr;
  w->length = 0;
}

void SlowCalls(const v8::FunctionCallbackInfo<v8::Value>& info) {
  info.GetReturnValue().Set(From(info.This())->slowCalls);
}

const v8::CFunction kFastNoop = v8::CFunction::Make(FastNoop);
const v8::CFunction kFastGetppid = v8::CFunction::Make(FastGetppid);
const v8::CFunction kFastWrite32 = v8::CFunction::Make(FastWrite32);

void Method(v8::Isolate* isolate, v8::Local<v8::FunctionTemplate> cls, const char* name, v8::FunctionCallback slow,
            const v8::CFunction* fast) {
  v8::Local<v8::FunctionTemplate> fn =
      v8::FunctionTemplate::New(isolate, slow, v8::Local<v8::Value>(), v8::Signature::New(isolate, cls), 0,
                                v8::ConstructorBehavior::kThrow, v8::SideEffectType::kHasSideEffect, fast);
  cls->PrototypeTemplate()->Set(isolate, name, fn);
}

void Constructor(const v8::FunctionCallbackInfo<v8::Value>& info) {
  v8::Isolate* isolate = info.GetIsolate();
  if (!info.IsConstructCall() || info.Length() < 1 || !info[0]->IsArrayBuffer()) {
    return Throw(isolate, "new Window(arrayBuffer): the mapping's ArrayBuffer", false);
  }
  auto* w = new Window();
  w->store = info[0].As<v8::ArrayBuffer>()->GetBackingStore();
  w->base = static_cast<uint8_t*>(w->store->Data());
  w->length = w->store->ByteLength();
  info.This()->SetAlignedPointerInInternalField(0, w);
  w->self.Reset(isolate, info.This());
  w->self.SetWeak(
      w, [](const v8::WeakCallbackInfo<Window>& data) { delete data.GetParameter(); },
      v8::WeakCallbackType::kParameter);
}

}  // namespace

NODE_MODULE_INIT() {
  v8::Isolate* isolate = context->GetIsolate();
  v8::Local<v8::FunctionTemplate> cls = v8::FunctionTemplate::New(isolate, Constructor);
  cls->SetClassName(v8::String::NewFromUtf8Literal(isolate, "Window"));
  cls->InstanceTemplate()->SetInternalFieldCount(1);
  Method(isolate, cls, "fastNoop", SlowNoop, &kFastNoop);
  Method(isolate, cls, "slowNoop", SlowNoop, nullptr);
  Method(isolate, cls, "fastGetppid", SlowGetppid, &kFastGetppid);
  Method(isolate, cls, "slowGetppid", SlowGetppid, nullptr);
  Method(isolate, cls, "fastWrite32", SlowWrite32, &kFastWrite32);
  Method(isolate, cls, "slowWrite32", SlowWrite32, nullptr);
  Method(isolate, cls, "slowCalls", SlowCalls, nullptr);
  Method(isolate, cls, "close", Close, nullptr);
  exports->Set(context, v8::String::NewFromUtf8Literal(isolate, "Window"), cls->GetFunction(context).ToLocalChecked())
      .Check();
}
