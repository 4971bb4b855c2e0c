// What every kernel-object file of the addon includes: per-env data, handles, argument checks,
// errors, mmapped memory and the ioctl helpers, each in its own file.
#pragma once

#include "addon.h"
#include "args.h"
#include "errors.h"
#include "handles.h"
#include "ioctl.h"
#include "memory.h"
