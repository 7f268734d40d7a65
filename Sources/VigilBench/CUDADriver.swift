import Dispatch
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The CUDA driver API, opened with dlopen, and the GPU benchmarks built on it: kernels written in PTX
/// (below) that the driver compiles at load time, so no CUDA toolkit is needed to build Vigil.
final class CUDADriver {
    typealias Result = Int32
    private let handle: UnsafeMutableRawPointer

    let cuInit: @convention(c) (UInt32) -> Result
    let cuDeviceGetCount: @convention(c) (UnsafeMutablePointer<Int32>) -> Result
    let cuDeviceGet: @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Result
    let cuDeviceGetName: @convention(c) (UnsafeMutablePointer<CChar>, Int32, Int32) -> Result
    let cuDeviceGetAttribute: @convention(c) (UnsafeMutablePointer<Int32>, Int32, Int32) -> Result
    let cuCtxCreate: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, UInt32, Int32) -> Result
    let cuCtxDestroy: @convention(c) (OpaquePointer?) -> Result
    let cuCtxSynchronize: @convention(c) () -> Result
    let cuModuleLoadData: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, UnsafeRawPointer) -> Result
    let cuModuleUnload: @convention(c) (OpaquePointer?) -> Result
    let cuModuleGetFunction: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, OpaquePointer?, UnsafePointer<CChar>) -> Result
    let cuMemAlloc: @convention(c) (UnsafeMutablePointer<UInt64>, Int) -> Result
    let cuMemFree: @convention(c) (UInt64) -> Result
    let cuMemAllocHost: @convention(c) (UnsafeMutablePointer<UnsafeMutableRawPointer?>, Int) -> Result
    let cuMemFreeHost: @convention(c) (UnsafeMutableRawPointer?) -> Result
    let cuMemcpyHtoD: @convention(c) (UInt64, UnsafeRawPointer, Int) -> Result
    let cuMemcpyDtoH: @convention(c) (UnsafeMutableRawPointer, UInt64, Int) -> Result
    let cuLaunchKernel: @convention(c) (OpaquePointer?, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, OpaquePointer?,
                                         UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> Result
    let cuGetErrorString: @convention(c) (Result, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> Result

    // CUdevice_attribute values (cuda.h).
    static let attributeClockRate: Int32 = 13           // kHz
    static let attributeMultiprocessors: Int32 = 16
    static let attributeMemoryClockRate: Int32 = 36     // kHz
    static let attributeMemoryBusWidth: Int32 = 37      // bits
    static let attributeComputeMajor: Int32 = 75
    static let attributeComputeMinor: Int32 = 76

    private init(handle: UnsafeMutableRawPointer, symbols: [String: UnsafeMutableRawPointer]) {
        self.handle = handle
        func f<T>(_ name: String) -> T { unsafeBitCast(symbols[name]!, to: T.self) }
        cuInit = f("cuInit")
        cuDeviceGetCount = f("cuDeviceGetCount")
        cuDeviceGet = f("cuDeviceGet")
        cuDeviceGetName = f("cuDeviceGetName")
        cuDeviceGetAttribute = f("cuDeviceGetAttribute")
        cuCtxCreate = f("cuCtxCreate_v2")
        cuCtxDestroy = f("cuCtxDestroy_v2")
        cuCtxSynchronize = f("cuCtxSynchronize")
        cuModuleLoadData = f("cuModuleLoadData")
        cuModuleUnload = f("cuModuleUnload")
        cuModuleGetFunction = f("cuModuleGetFunction")
        cuMemAlloc = f("cuMemAlloc_v2")
        cuMemFree = f("cuMemFree_v2")
        cuMemAllocHost = f("cuMemAllocHost_v2")
        cuMemFreeHost = f("cuMemFreeHost")
        cuMemcpyHtoD = f("cuMemcpyHtoD_v2")
        cuMemcpyDtoH = f("cuMemcpyDtoH_v2")
        cuLaunchKernel = f("cuLaunchKernel")
        cuGetErrorString = f("cuGetErrorString")
    }

    deinit { dlclose(handle) }

    static let symbolNames = [
        "cuInit", "cuDeviceGetCount", "cuDeviceGet", "cuDeviceGetName", "cuDeviceGetAttribute", "cuCtxCreate_v2",
        "cuCtxDestroy_v2", "cuCtxSynchronize", "cuModuleLoadData", "cuModuleUnload", "cuModuleGetFunction", "cuMemAlloc_v2",
        "cuMemFree_v2", "cuMemAllocHost_v2", "cuMemFreeHost", "cuMemcpyHtoD_v2", "cuMemcpyDtoH_v2", "cuLaunchKernel",
        "cuGetErrorString",
    ]

    /// Opens the driver and checks there is a device; the failure says why in words.
    static func open(_ library: String) -> Swift.Result<CUDADriver, BenchError> {
        guard let handle = dlopen(library, RTLD_NOW | RTLD_LOCAL) else {
            let reason = dlerror().map { String(cString: $0) } ?? "not found"
            return .failure(BenchError("no GPU: the CUDA driver (\(library)) is not installed here (\(reason))"))
        }
        var symbols: [String: UnsafeMutableRawPointer] = [:]
        for name in symbolNames {
            guard let symbol = dlsym(handle, name) else {
                dlclose(handle)
                return .failure(BenchError("no GPU benchmark: \(library) lacks \(name) (a driver older than CUDA 4)"))
            }
            symbols[name] = symbol
        }
        let driver = CUDADriver(handle: handle, symbols: symbols)
        var count: Int32 = 0
        if let error = driver.check(driver.cuInit(0), "cuInit") ?? driver.check(driver.cuDeviceGetCount(&count), "cuDeviceGetCount") {
            return .failure(BenchError("no GPU: \(error)"))
        }
        guard count > 0 else { return .failure(BenchError("no GPU: the CUDA driver sees no device")) }
        return .success(driver)
    }

    /// nil on success, else "call: CUDA_ERROR_… (message)".
    func check(_ result: Result, _ call: String) -> String? {
        guard result != 0 else { return nil }
        var text: UnsafePointer<CChar>?
        _ = cuGetErrorString(result, &text)
        return "\(call) failed with error \(result)\(text.map { " (\(String(cString: $0)))" } ?? "")"
    }

    private func must(_ result: Result, _ call: String) throws {
        if let error = check(result, call) { throw BenchError(error) }
    }

    /// The three GPU benchmarks on device 0.
    func benchmark() -> [BenchResult] {
        do {
            return try measure()
        } catch {
            return [.skipped("gpu", suite: .gpu, reason: "\(error)")]
        }
    }

    private func attribute(_ which: Int32, _ device: Int32) -> Int {
        var value: Int32 = 0
        return cuDeviceGetAttribute(&value, which, device) == 0 ? Int(value) : 0
    }

    /// FP32 cores per SM by compute capability (NVIDIA's CUDA C programming guide, "Arithmetic Instructions").
    static func coresPerMultiprocessor(major: Int, minor: Int) -> Int {
        switch (major, minor) {
        case (6, 0), (7, _), (8, 0): 64
        case (3, _): 192
        default: 128
        }
    }

    private func measure() throws -> [BenchResult] {
        var device: Int32 = 0
        try must(cuDeviceGet(&device, 0), "cuDeviceGet")
        var nameBuffer = [CChar](repeating: 0, count: 256)
        _ = cuDeviceGetName(&nameBuffer, 256, device)
        let name = String(cString: nameBuffer)
        let sms = attribute(Self.attributeMultiprocessors, device)
        let clockKHz = attribute(Self.attributeClockRate, device)
        let memoryClockKHz = attribute(Self.attributeMemoryClockRate, device)
        let busWidth = attribute(Self.attributeMemoryBusWidth, device)
        let major = attribute(Self.attributeComputeMajor, device), minor = attribute(Self.attributeComputeMinor, device)
        var context: OpaquePointer?
        try must(cuCtxCreate(&context, 0, device), "cuCtxCreate")
        defer { _ = cuCtxDestroy(context) }
        var module: OpaquePointer?
        try PTX.source.withCString { try must(cuModuleLoadData(&module, $0), "cuModuleLoadData (PTX)") }
        defer { _ = cuModuleUnload(module) }
        var copyKernel: OpaquePointer?, fmaKernel: OpaquePointer?
        try must(cuModuleGetFunction(&copyKernel, module, "vb_copy"), "cuModuleGetFunction vb_copy")
        try must(cuModuleGetFunction(&fmaKernel, module, "vb_fma"), "cuModuleGetFunction vb_fma")
        let blocks = UInt32(max(sms, 1) * 32), threads: UInt32 = 256
        let where_ = "\(name) (GPU 0, \(sms) SMs, compute \(major).\(minor))"

        // Device memory bandwidth: a grid-stride copy of 256 MiB, read once and written once per launch.
        let words = 32 << 20
        let bytes = words * 8
        var source: UInt64 = 0, destination: UInt64 = 0
        try must(cuMemAlloc(&source, bytes), "cuMemAlloc")
        defer { _ = cuMemFree(source) }
        try must(cuMemAlloc(&destination, bytes), "cuMemAlloc")
        defer { _ = cuMemFree(destination) }
        var count = UInt64(words)
        func launchCopy() throws {
            try withUnsafeMutablePointer(to: &destination) { d in
                try withUnsafeMutablePointer(to: &source) { s in
                    try withUnsafeMutablePointer(to: &count) { n in
                        var parameters: [UnsafeMutableRawPointer?] = [UnsafeMutableRawPointer(d), UnsafeMutableRawPointer(s), UnsafeMutableRawPointer(n)]
                        try must(cuLaunchKernel(copyKernel, blocks, 1, 1, threads, 1, 1, 0, nil, &parameters, nil), "cuLaunchKernel vb_copy")
                    }
                }
            }
        }
        try launchCopy()
        try must(cuCtxSynchronize(), "cuCtxSynchronize")
        let launches = 20
        var start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<launches { try launchCopy() }
        try must(cuCtxSynchronize(), "cuCtxSynchronize")
        var seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        var bandwidth = BenchResult(name: "gpu.memory_bandwidth", suite: .gpu, value: Double(2 * bytes * launches) / seconds / 1e9,
                                    unit: "GB/s", higherIsBetter: true, detail: "device-to-device copy kernel, 256 MiB, \(where_)")
        if memoryClockKHz > 0 && busWidth > 0 {
            bandwidth.peak = 2 * Double(memoryClockKHz) * 1000 * Double(busWidth) / 8 / 1e9
            bandwidth.peakSource = "2 × \(memoryClockKHz / 1000) MHz memory clock × \(busWidth)-bit bus"
        }

        // FP32 FMA throughput: 8 independent chains per thread; iterations doubled until a run lasts 0.2 s.
        var out: UInt64 = 0
        let totalThreads = Int(blocks * threads)
        try must(cuMemAlloc(&out, totalThreads * 4), "cuMemAlloc")
        defer { _ = cuMemFree(out) }
        var iterations: UInt32 = 1024
        while true {
            start = DispatchTime.now().uptimeNanoseconds
            try withUnsafeMutablePointer(to: &out) { o in
                try withUnsafeMutablePointer(to: &iterations) { i in
                    var parameters: [UnsafeMutableRawPointer?] = [UnsafeMutableRawPointer(o), UnsafeMutableRawPointer(i)]
                    try must(cuLaunchKernel(fmaKernel, blocks, 1, 1, threads, 1, 1, 0, nil, &parameters, nil), "cuLaunchKernel vb_fma")
                }
            }
            try must(cuCtxSynchronize(), "cuCtxSynchronize")
            seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            if seconds >= 0.2 || iterations >= 1 << 30 { break }
            iterations *= 2
        }
        let flops = Double(totalThreads) * Double(iterations) * 8 * 2
        var fma = BenchResult(name: "gpu.fp32_fma", suite: .gpu, value: flops / seconds / 1e9, unit: "GFLOP/s", higherIsBetter: true,
                              detail: "FP32 fused multiply-add, 8 chains × \(iterations) iterations × \(totalThreads) threads, \(where_)")
        let cores = Self.coresPerMultiprocessor(major: major, minor: minor)
        if sms > 0 && clockKHz > 0 {
            fma.peak = Double(sms * cores) * 2 * Double(clockKHz) / 1e6
            fma.peakSource = "\(sms) SMs × \(cores) FP32 cores × 2 × \(clockKHz / 1000) MHz"
        }

        // Host↔device transfers from pinned memory.
        var host: UnsafeMutableRawPointer?
        try must(cuMemAllocHost(&host, bytes), "cuMemAllocHost")
        defer { _ = cuMemFreeHost(host) }
        guard let host else { throw BenchError("cuMemAllocHost returned no memory") }
        memset(host, 1, bytes)
        let copies = 5
        start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<copies { try must(cuMemcpyHtoD(source, host, bytes), "cuMemcpyHtoD") }
        let toDevice = Double(bytes * copies) / (Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9) / 1e9
        start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<copies { try must(cuMemcpyDtoH(host, source, bytes), "cuMemcpyDtoH") }
        let toHost = Double(bytes * copies) / (Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9) / 1e9
        let transfers = [
            BenchResult(name: "gpu.host_to_device", suite: .gpu, value: toDevice, unit: "GB/s", higherIsBetter: true,
                        detail: "pinned host memory to the GPU, 256 MiB × \(copies), \(where_)"),
            BenchResult(name: "gpu.device_to_host", suite: .gpu, value: toHost, unit: "GB/s", higherIsBetter: true,
                        detail: "the GPU to pinned host memory, 256 MiB × \(copies), \(where_)"),
        ]
        return [bandwidth, fma] + transfers
    }
}

/// The GPU kernels, as PTX text the driver compiles when the module loads (any GPU from sm_50 on).
enum PTX {
    static let source = """
        .version 6.0
        .target sm_50
        .address_size 64

        // dst[i] = src[i] for i < n, 64-bit words, grid-stride.
        .visible .entry vb_copy(.param .u64 dst, .param .u64 src, .param .u64 n)
        {
            .reg .pred %p<2>;
            .reg .b32 %r<6>;
            .reg .b64 %rd<12>;
            ld.param.u64 %rd1, [dst];
            ld.param.u64 %rd2, [src];
            ld.param.u64 %rd3, [n];
            cvta.to.global.u64 %rd1, %rd1;
            cvta.to.global.u64 %rd2, %rd2;
            mov.u32 %r1, %ctaid.x;
            mov.u32 %r2, %ntid.x;
            mov.u32 %r3, %tid.x;
            mov.u32 %r4, %nctaid.x;
            mul.wide.u32 %rd4, %r1, %r2;
            cvt.u64.u32 %rd5, %r3;
            add.u64 %rd4, %rd4, %rd5;
            mul.wide.u32 %rd6, %r4, %r2;
        COPY_LOOP:
            setp.ge.u64 %p1, %rd4, %rd3;
            @%p1 bra COPY_DONE;
            shl.b64 %rd7, %rd4, 3;
            add.u64 %rd8, %rd2, %rd7;
            ld.global.u64 %rd9, [%rd8];
            add.u64 %rd10, %rd1, %rd7;
            st.global.u64 [%rd10], %rd9;
            add.u64 %rd4, %rd4, %rd6;
            bra COPY_LOOP;
        COPY_DONE:
            ret;
        }

        // Eight independent FP32 fused multiply-add chains per thread, `iterations` times; the sum is stored
        // so nothing is optimised away.
        .visible .entry vb_fma(.param .u64 out, .param .u32 iterations)
        {
            .reg .pred %p<2>;
            .reg .b32 %r<8>;
            .reg .f32 %f<12>;
            .reg .b64 %rd<5>;
            ld.param.u64 %rd1, [out];
            ld.param.u32 %r1, [iterations];
            mov.u32 %r2, %ctaid.x;
            mov.u32 %r3, %ntid.x;
            mov.u32 %r4, %tid.x;
            mad.lo.s32 %r5, %r2, %r3, %r4;
            cvt.rn.f32.u32 %f1, %r5;
            mul.f32 %f1, %f1, 0f3A800000;
            add.f32 %f2, %f1, 0f3F800000;
            add.f32 %f3, %f1, 0f40000000;
            add.f32 %f4, %f1, 0f40400000;
            add.f32 %f5, %f1, 0f40800000;
            add.f32 %f6, %f1, 0f40A00000;
            add.f32 %f7, %f1, 0f40C00000;
            add.f32 %f8, %f1, 0f40E00000;
            mov.f32 %f9, 0f3F7FFFEF;
            mov.f32 %f10, 0f3A83126F;
            mov.u32 %r6, 0;
        FMA_LOOP:
            fma.rn.f32 %f1, %f1, %f9, %f10;
            fma.rn.f32 %f2, %f2, %f9, %f10;
            fma.rn.f32 %f3, %f3, %f9, %f10;
            fma.rn.f32 %f4, %f4, %f9, %f10;
            fma.rn.f32 %f5, %f5, %f9, %f10;
            fma.rn.f32 %f6, %f6, %f9, %f10;
            fma.rn.f32 %f7, %f7, %f9, %f10;
            fma.rn.f32 %f8, %f8, %f9, %f10;
            add.u32 %r6, %r6, 1;
            setp.lt.u32 %p1, %r6, %r1;
            @%p1 bra FMA_LOOP;
            add.f32 %f1, %f1, %f2;
            add.f32 %f3, %f3, %f4;
            add.f32 %f5, %f5, %f6;
            add.f32 %f7, %f7, %f8;
            add.f32 %f1, %f1, %f3;
            add.f32 %f5, %f5, %f7;
            add.f32 %f1, %f1, %f5;
            cvta.to.global.u64 %rd2, %rd1;
            mul.wide.u32 %rd3, %r5, 4;
            add.u64 %rd4, %rd2, %rd3;
            st.global.f32 [%rd4], %f1;
            ret;
        }
        """
}
