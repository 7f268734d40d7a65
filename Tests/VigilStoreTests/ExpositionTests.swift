import Testing
import VigilCore
@testable import VigilStore

@Suite("Prometheus text exposition 0.0.4")
struct ExpositionTests {
    @Test("HELP, TYPE, escaped labels, Go-style values, one block per family, newline at the end")
    func render() {
        let store = MetricStore()
        store.describe("gpu_info", kind: .gauge, help: "GPU facts, back\\slash and\nnewline.")
        store.append(Labels(name: "gpu_info", ["model": "NVIDIA H100 \"SXM\"\\x\npath", "gpu": "0"]), 1000, 1)
        store.describe("jobs_total", kind: .counter, help: "Jobs.")
        store.append(Labels(name: "jobs_total"), 1000, 1.5)
        store.append(Labels(name: "odd"), 1000, .infinity)
        let text = PrometheusExposition.render(store.snapshot(at: 2000))
        #expect(text == """
            # HELP gpu_info GPU facts, back\\\\slash and\\nnewline.
            # TYPE gpu_info gauge
            gpu_info{gpu="0",model="NVIDIA H100 \\"SXM\\"\\\\x\\npath"} 1
            # HELP jobs_total Jobs.
            # TYPE jobs_total counter
            jobs_total 1.5
            # TYPE odd untyped
            odd +Inf

            """)
        #expect(!text.contains(" \n"), "no trailing blanks")
    }
}
