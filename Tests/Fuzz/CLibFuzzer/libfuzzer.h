// libFuzzer's driver, from libclang_rt.fuzzer in the toolchain (linked by -sanitize=fuzzer).
// The fuzz targets call it from their own main: SwiftPM links every Swift executable with
// --defsym main=<module>_main, which takes the place of libFuzzer's main().
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
