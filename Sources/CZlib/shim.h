#ifndef FLOCK_CZLIB_SHIM_H
#define FLOCK_CZLIB_SHIM_H
#include <zlib.h>
#endif
