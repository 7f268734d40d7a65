import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The GPU suite, through the CUDA driver API opened with dlopen (`libcuda.so.1`, or `VIGIL_CUDA_LIBRARY`).
/// Without the driver or a device it says so in `skipped`: not a failure.
enum GPUBench {
    static func run(library: String = ProcessInfo.processInfo.environment["VIGIL_CUDA_LIBRARY"] ?? "libcuda.so.1") -> [BenchResult] {
        switch CUDADriver.open(library) {
        case .failure(let reason):
            return [.skipped("gpu", suite: .gpu, reason: reason.description)]
        case .success(let driver):
            return driver.benchmark()
        }
    }
}
