// vfio_fast.node: the MMIO writes (MappedRegion.write8/16/32, the doorbell path) and the eventfd
// read (Interrupts.drain) as V8 fast API calls (v8-fast-api-calls.h, what Node's own bindings
// use): optimized JS calls the C function directly, without N-API's crossing. Optional: built only where a
// v8-fast-api-calls.h for exactly this Node's V8 is found (scripts/v8-fast-calls.js; Node does not ship one), loaded
// only when Node accepts its ABI, and lib/native.ts keeps the N-API calls wherever it is not there. Every check stays
// in the addon (fast_calls.h): this module hands it what JS passed, and for anything the addon does not write it calls
// the N-API function, which throws the error.
#include "fast_calls.h"

#include <dlfcn.h>
#include <node.h>
#include <v8-fast-api-calls.h>

namespace {

using vfio::FastCallTarget;

// One function: the env's table in the addon, the width of a write, and the N-API call behind it.
struct Entry {
  const FastCallTarget* target = nullptr;
  uint32_t width = 0;
  v8::Global<v8::Function> fallback;
  double* slowCalls = nullptr;  // its Installed's count
};

// What one install() made, freed with the env.
struct Installed {
  Entry writes[3];
  Entry read;
  double slowCalls = 0;  // calls that took the slow callback (how a test sees the fast path)
};

bool Write(const Entry* e, double key, double offset, double value) {
  return e->target->mmioWrite(e->target->addon, key, offset, value, e->width);
}

// The fast callback, (handle, key, offset, value): no allocation, no exception; anything not
// written goes to the slow one. The handle is the N-API call's; the key names the same mapping.
void FastWrite(v8::Local<v8::Object>, v8::Local<v8::Value>, double key, double offset, double value,
               v8::FastApiCallbackOptions& options) {
  if (!Write(static_cast<Entry*>(options.data.As<v8::External>()->Value()), key, offset, value)) {
    options.fallback = true;
  }
}

// Interpreted callers, and the fast callback's fallback: the same write, else the N-API call
// (handle, offset, value).
void SlowWrite(const v8::FunctionCallbackInfo<v8::Value>& info) {
  auto* e = static_cast<Entry*>(info.Data().As<v8::External>()->Value());
  ++*e->slowCalls;
  if (info[1]->IsNumber() && info[2]->IsNumber() && info[3]->IsNumber() &&
      Write(e, info[1].As<v8::Number>()->Value(), info[2].As<v8::Number>()->Value(),
            info[3].As<v8::Number>()->Value())) {
    return;
  }
  v8::Isolate* isolate = info.GetIsolate();
  v8::Local<v8::Value> argv[3] = {info[0], info[2], info[3]};
  v8::Local<v8::Value> result;
  // An exception from it stays pending and reaches the caller.
  if (e->fallback.Get(isolate)->Call(isolate->GetCurrentContext(), info.This(), 3, argv).ToLocal(&result)) {
    info.GetReturnValue().Set(result);
  }
}

// (handle, key) => the count: the eventfd read, else the N-API call (handle).
double FastRead(v8::Local<v8::Object>, v8::Local<v8::Value>, double key, v8::FastApiCallbackOptions& options) {
  auto* e = static_cast<Entry*>(options.data.As<v8::External>()->Value());
  double n = e->target->irqRead(e->target->addon, key);
  if (n < 0) options.fallback = true;
  return n < 0 ? 0 : n;
}

void SlowRead(const v8::FunctionCallbackInfo<v8::Value>& info) {
  auto* e = static_cast<Entry*>(info.Data().As<v8::External>()->Value());
  ++*e->slowCalls;
  if (info[1]->IsNumber()) {
    double n = e->target->irqRead(e->target->addon, info[1].As<v8::Number>()->Value());
    if (n >= 0) return info.GetReturnValue().Set(n);
  }
  v8::Isolate* isolate = info.GetIsolate();
  v8::Local<v8::Value> argv[1] = {info[0]};
  v8::Local<v8::Value> result;
  if (e->fallback.Get(isolate)->Call(isolate->GetCurrentContext(), info.This(), 1, argv).ToLocal(&result)) {
    info.GetReturnValue().Set(result);
  }
}

void SlowCalls(const v8::FunctionCallbackInfo<v8::Value>& info) {
  info.GetReturnValue().Set(static_cast<Installed*>(info.Data().As<v8::External>()->Value())->slowCalls);
}

const v8::CFunction kFastWrite = v8::CFunction::Make(FastWrite);
const v8::CFunction kFastRead = v8::CFunction::Make(FastRead);

void TypeError(v8::Isolate* isolate, const char* message) {
  isolate->ThrowException(v8::Exception::TypeError(v8::String::NewFromUtf8(isolate, message).ToLocalChecked()));
}

// The calling env's table in the already loaded addon at `path`, or null.
const FastCallTarget* FindTarget(const char* path, double envKey) {
  void* lib = dlopen(path, RTLD_LAZY | RTLD_NOLOAD);  // never loads anything new
  if (lib == nullptr) return nullptr;
  auto lookup = reinterpret_cast<vfio::FastCallTargetLookup>(dlsym(lib, VFIO_FAST_CALL_TARGET_SYMBOL));
  const FastCallTarget* target = lookup ? lookup(envKey) : nullptr;
  dlclose(lib);  // only the count dlopen took: Node keeps the addon loaded
  return target;
}

// One function of `out`: `name`, calling `fast` from optimized code and `slow` otherwise.
bool Define(v8::Isolate* isolate, v8::Local<v8::Object> out, const char* name, Entry* e, v8::FunctionCallback slow,
            const v8::CFunction* fast, int length) {
  v8::Local<v8::Context> context = isolate->GetCurrentContext();
  v8::Local<v8::FunctionTemplate> t =
      v8::FunctionTemplate::New(isolate, slow, v8::External::New(isolate, e), v8::Local<v8::Signature>(), length,
                                v8::ConstructorBehavior::kThrow, v8::SideEffectType::kHasSideEffect, fast);
  v8::Local<v8::Function> fn;
  return t->GetFunction(context).ToLocal(&fn) &&
         out->Set(context, v8::String::NewFromUtf8(isolate, name).ToLocalChecked(), fn).FromMaybe(false);
}

// install(addonPath, envKey: native.fastCallEnvKey(), fallbacks: the N-API calls [write8,
// write16, write32: (handle, offset, value), irqRead: (handle)]) => { mmioWrite8, mmioWrite16,
// mmioWrite32: (handle, key, offset, value); irqRead: (handle, key); slowCalls() }.
void Install(const v8::FunctionCallbackInfo<v8::Value>& info) {
  v8::Isolate* isolate = info.GetIsolate();
  v8::Local<v8::Context> context = isolate->GetCurrentContext();
  constexpr uint32_t kFallbacks = 4;
  v8::Local<v8::Function> fallbacks[kFallbacks];
  bool ok = info[0]->IsString() && info[1]->IsNumber() && info[2]->IsArray() &&
            info[2].As<v8::Array>()->Length() == kFallbacks;
  for (uint32_t i = 0; ok && i < kFallbacks; i++) {
    v8::Local<v8::Value> f;
    ok = info[2].As<v8::Array>()->Get(context, i).ToLocal(&f) && f->IsFunction();
    if (ok) fallbacks[i] = f.As<v8::Function>();
  }
  if (!ok) return TypeError(isolate, "install(addonPath, envKey, [write8, write16, write32, irqRead])");
  v8::String::Utf8Value path(isolate, info[0]);
  const FastCallTarget* target = *path ? FindTarget(*path, info[1].As<v8::Number>()->Value()) : nullptr;
  if (target == nullptr || target->mmioWrite == nullptr || target->irqRead == nullptr) {
    return TypeError(
        isolate,
        "install(): no env of a loaded vfio addon of this version has that key (rebuild both: npm rebuild vfio)");
  }
  auto* installed = new Installed();
  node::AddEnvironmentCleanupHook(
      isolate, [](void* arg) { delete static_cast<Installed*>(arg); }, installed);
  Entry* entries[kFallbacks] = {&installed->writes[0], &installed->writes[1], &installed->writes[2], &installed->read};
  for (uint32_t i = 0; i < kFallbacks; i++) {
    entries[i]->target = target;
    entries[i]->width = i < 3 ? 1u << i : 0;
    entries[i]->slowCalls = &installed->slowCalls;
    entries[i]->fallback.Reset(isolate, fallbacks[i]);
  }
  v8::Local<v8::Object> out = v8::Object::New(isolate);
  v8::Local<v8::Function> slow;
  if (!Define(isolate, out, "mmioWrite8", entries[0], SlowWrite, &kFastWrite, 4) ||
      !Define(isolate, out, "mmioWrite16", entries[1], SlowWrite, &kFastWrite, 4) ||
      !Define(isolate, out, "mmioWrite32", entries[2], SlowWrite, &kFastWrite, 4) ||
      !Define(isolate, out, "irqRead", entries[3], SlowRead, &kFastRead, 2) ||
      !v8::Function::New(context, SlowCalls, v8::External::New(isolate, installed)).ToLocal(&slow) ||
      !out->Set(context, v8::String::NewFromUtf8Literal(isolate, "slowCalls"), slow).FromMaybe(false)) {
    return;
  }
  info.GetReturnValue().Set(out);
}

}  // namespace

NODE_MODULE_INIT() {
  v8::Isolate* isolate = context->GetIsolate();
  v8::Local<v8::Function> install;
  if (!v8::Function::New(context, Install).ToLocal(&install)) return;
  exports->Set(context, v8::String::NewFromUtf8Literal(isolate, "install"), install).Check();
}
