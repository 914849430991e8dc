#ifndef FLOCK_CLIBCRYPTO_SHIM_H
#define FLOCK_CLIBCRYPTO_SHIM_H
/* OpenSSL's libcrypto, for its ChaCha20 keystream only (FlockCrypto's LibCrypto.swift). */
#include <openssl/evp.h>
#endif
