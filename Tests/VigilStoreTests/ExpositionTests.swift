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
        // What /metrics serves (cached series text) is the same document.
        #expect(store.exposition(at: 2000) == text)
    }

    @Test("series of a family come out sorted by labels, however they were created")
    func sorted() {
        let store = MetricStore()
        for gpu in [3, 1, 10, 0, 2] { store.append(Labels(name: "g", ["gpu": "\(gpu)"]), 1000, Double(gpu)) }
        store.append(Labels(name: "a"), 1000, 1)
        let lines = store.exposition(at: 1000).split(separator: "\n").filter { !$0.hasPrefix("#") }
        #expect(lines == ["a 1", "g{gpu=\"0\"} 0", "g{gpu=\"1\"} 1", "g{gpu=\"10\"} 10", "g{gpu=\"2\"} 2", "g{gpu=\"3\"} 3"])
    }
}
