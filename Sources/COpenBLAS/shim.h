#ifndef FLOCK_COPENBLAS_SHIM_H
#define FLOCK_COPENBLAS_SHIM_H
// Debian's libopenblas-dev: openblas.pc points the include path at the pthread variant's cblas.h,
// which also declares openblas_set_num_threads / openblas_get_num_threads.
#include <cblas.h>
#endif
