// Buffer: an owning, move-only allocation on the host or on the CUDA device (RAII). Host buffers are 64-byte
// aligned. Device buffers go through device_malloc/device_free (device.h), so they are counted for peak-memory
// reports and leak tests. Allocation failures come back as Status (Code::Oom), never as exceptions.
#pragma once

#include <cstdlib>
#include <cstring>
#include <utility>

#include "core/common.h"
#include "core/device.h"

namespace wsf {

class Buffer {
 public:
  Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& o) noexcept { swap(o); }
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) {
      release();
      swap(o);
    }
    return *this;
  }
  ~Buffer() { release(); }

  // Allocates `bytes` (zero-filled) on `dev`. Any previous allocation is released first.
  Status allocate(Device dev, size_t bytes) {
    release();
    dev_ = dev;
    if (bytes == 0) return Status::ok();
    if (dev == Device::Cpu) {
      const size_t rounded = (bytes + 63) / 64 * 64;
      ptr_ = std::aligned_alloc(64, rounded);
      if (ptr_ == nullptr) return Status(Code::Oom, "host out of memory allocating " + std::to_string(bytes) + " bytes");
      std::memset(ptr_, 0, rounded);
    } else {
      WSF_RETURN_IF_ERROR(device_malloc(&ptr_, bytes));
      Status st = device_memset_zero(ptr_, bytes);
      if (!st.is_ok()) {
        release();
        return st;
      }
    }
    bytes_ = bytes;
    return Status::ok();
  }

  Status zero() {
    if (bytes_ == 0) return Status::ok();
    if (dev_ == Device::Cpu) {
      std::memset(ptr_, 0, bytes_);
      return Status::ok();
    }
    return device_memset_zero(ptr_, bytes_);
  }

  // Copies from/to host memory regardless of where the buffer lives.
  Status upload(const void* src, size_t bytes, size_t offset = 0) {
    if (offset + bytes > bytes_) return shape_error("Buffer::upload out of range");
    if (bytes == 0) return Status::ok();
    if (dev_ == Device::Cpu) {
      std::memcpy(static_cast<char*>(ptr_) + offset, src, bytes);
      return Status::ok();
    }
    return copy_host_to_device(static_cast<char*>(ptr_) + offset, src, bytes);
  }
  Status download(void* dst, size_t bytes, size_t offset = 0) const {
    if (offset + bytes > bytes_) return shape_error("Buffer::download out of range");
    if (bytes == 0) return Status::ok();
    if (dev_ == Device::Cpu) {
      std::memcpy(dst, static_cast<const char*>(ptr_) + offset, bytes);
      return Status::ok();
    }
    return copy_device_to_host(dst, static_cast<const char*>(ptr_) + offset, bytes);
  }

  void release() {
    if (ptr_ != nullptr) {
      if (dev_ == Device::Cpu) {
        std::free(ptr_);
      } else {
        (void)device_free(ptr_);
      }
    }
    ptr_ = nullptr;
    bytes_ = 0;
  }

  template <typename T>
  T* as() { return static_cast<T*>(ptr_); }
  template <typename T>
  const T* as() const { return static_cast<const T*>(ptr_); }
  void* data() { return ptr_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return dev_; }
  bool empty() const { return ptr_ == nullptr; }

 private:
  void swap(Buffer& o) noexcept {
    std::swap(dev_, o.dev_);
    std::swap(ptr_, o.ptr_);
    std::swap(bytes_, o.bytes_);
  }
  Device dev_ = Device::Cpu;
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace wsf
