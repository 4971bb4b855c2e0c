// vfio_fast.node: the MMIO writes (MappedRegion.write8/16/32, the doorbell path) as V8 fast API
// calls (v8-fast-api-calls.h, what Node's own bindings use): optimized JS calls the C function
// directly, without N-API's crossing. Optional: built only where a v8-fast-api-calls.h for exactly
// this Node's V8 is found (scripts/v8-fast-calls.js; Node does not ship one), loaded only when
// Node accepts its ABI, and lib/native.ts keeps the N-API calls wherever it is not there.
// Every check stays in the addon (fast_calls.h): this module hands it what JS passed, and for
// anything the addon does not write it calls the N-API function, which throws the error.
#include "fast_calls.h"

#include <dlfcn.h>
#include <node.h>
#include <v8-fast-api-calls.h>

namespace {

using vfio::FastCallTarget;

// One write function: its width, the env's table in the addon, and the N-API call behind it.
struct Entry {
  const FastCallTarget* target = nullptr;
  uint32_t width = 0;
  v8::Global<v8::Function> fallback;
  double* slowCalls = nullptr;  // its Installed's count
};

// What one install() made, freed with the env.
struct Installed {
  Entry entries[3];
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

void SlowCalls(const v8::FunctionCallbackInfo<v8::Value>& info) {
  info.GetReturnValue().Set(static_cast<Installed*>(info.Data().As<v8::External>()->Value())->slowCalls);
}

const v8::CFunction kFastWrite = v8::CFunction::Make(FastWrite);

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

// install(addonPath, envKey: native.fastCallEnvKey(), fallbacks: [write8, write16, write32], the
// N-API calls (handle, offset, value)) => { mmioWrite8, mmioWrite16, mmioWrite32, each (handle,
// key, offset, value); slowCalls() }.
void Install(const v8::FunctionCallbackInfo<v8::Value>& info) {
  v8::Isolate* isolate = info.GetIsolate();
  v8::Local<v8::Context> context = isolate->GetCurrentContext();
  if (!info[0]->IsString() || !info[1]->IsNumber() || !info[2]->IsArray() || info[2].As<v8::Array>()->Length() != 3) {
    return TypeError(isolate, "install(addonPath, envKey, [write8, write16, write32])");
  }
  v8::String::Utf8Value path(isolate, info[0]);
  const FastCallTarget* target = *path ? FindTarget(*path, info[1].As<v8::Number>()->Value()) : nullptr;
  if (target == nullptr) {
    return TypeError(
        isolate,
        "install(): no env of a loaded vfio addon of this version has that key (rebuild both: npm rebuild vfio)");
  }
  auto* installed = new Installed();
  node::AddEnvironmentCleanupHook(
      isolate, [](void* arg) { delete static_cast<Installed*>(arg); }, installed);
  v8::Local<v8::Object> out = v8::Object::New(isolate);
  static const char* const kNames[3] = {"mmioWrite8", "mmioWrite16", "mmioWrite32"};
  for (uint32_t i = 0; i < 3; i++) {
    v8::Local<v8::Value> fallback;
    if (!info[2].As<v8::Array>()->Get(context, i).ToLocal(&fallback) || !fallback->IsFunction()) {
      return TypeError(isolate, "install(): the fallbacks must be functions");
    }
    Entry& e = installed->entries[i];
    e.target = target;
    e.width = 1u << i;
    e.slowCalls = &installed->slowCalls;
    e.fallback.Reset(isolate, fallback.As<v8::Function>());
    v8::Local<v8::FunctionTemplate> t =
        v8::FunctionTemplate::New(isolate, SlowWrite, v8::External::New(isolate, &e), v8::Local<v8::Signature>(), 4,
                                  v8::ConstructorBehavior::kThrow, v8::SideEffectType::kHasSideEffect, &kFastWrite);
    v8::Local<v8::Function> fn;
    if (!t->GetFunction(context).ToLocal(&fn)) return;
    out->Set(context, v8::String::NewFromUtf8(isolate, kNames[i]).ToLocalChecked(), fn).Check();
  }
  v8::Local<v8::Function> slow;
  if (!v8::Function::New(context, SlowCalls, v8::External::New(isolate, installed)).ToLocal(&slow)) return;
  out->Set(context, v8::String::NewFromUtf8Literal(isolate, "slowCalls"), slow).Check();
  info.GetReturnValue().Set(out);
}

}  // namespace

NODE_MODULE_INIT() {
  v8::Isolate* isolate = context->GetIsolate();
  v8::Local<v8::Function> install;
  if (!v8::Function::New(context, Install).ToLocal(&install)) return;
  exports->Set(context, v8::String::NewFromUtf8Literal(isolate, "install"), install).Check();
}
