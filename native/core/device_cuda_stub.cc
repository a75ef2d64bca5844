// CPU-only builds: the device registry reports "built without CUDA" and every device call returns NoCuda.
#include "core/device.h"

namespace wsf {

CudaInfo cuda_info() {
  CudaInfo info;
  info.compiled = false;
  info.error = "wsflow was built without CUDA kernels (WSF_CUDA=OFF or no nvcc at build time)";
  return info;
}
bool cuda_available() { return false; }
Status device_malloc(void** ptr, size_t) {
  *ptr = nullptr;
  return no_cuda();
}
Status device_free(void* ptr) { return ptr == nullptr ? Status::ok() : no_cuda(); }
Status device_memset_zero(void*, size_t) { return no_cuda(); }
Status copy_host_to_device(void*, const void*, size_t) { return no_cuda(); }
Status copy_device_to_host(void*, const void*, size_t) { return no_cuda(); }
Status copy_device_to_device(void*, const void*, size_t) { return no_cuda(); }
Status device_synchronize() { return Status::ok(); }
size_t device_bytes_in_use() { return 0; }
size_t device_bytes_peak() { return 0; }
void device_reset_peak() {}
int64_t device_live_allocations() { return 0; }
uint64_t device_alloc_epoch() { return 0; }

CudaKernelSettings cuda_kernel_settings() { return {}; }

}  // namespace wsf
