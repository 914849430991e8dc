#ifndef FLOCK_CSODIUM_SHIM_H
#define FLOCK_CSODIUM_SHIM_H
#include <sodium.h>
#endif
