import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Logging
import Synchronization
import Testing
import VigilCore
import VigilLua
import VigilStore
@testable import VigilCollectors

/// A temporary folder, removed at the end.
private final class Folder {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-plugins-\(UUID().uuidString)")
    var path: String { url.path }

    init() throws { try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true) }
    deinit { try? FileManager.default.removeItem(at: url) }

    /// Writes `text` at `relative` (folders made as needed); `executable` makes it a script.
    @discardableResult
    func write(_ relative: String, _ text: String, executable: Bool = false) throws -> String {
        let file = url.appendingPathComponent(relative)
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        let temporary = file.deletingLastPathComponent().appendingPathComponent(".\(file.lastPathComponent).tmp")
        // O_CLOEXEC, so a child another test spawns meanwhile does not hold the script open for writing.
        let fd = open(temporary.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, executable ? 0o755 : 0o644)
        guard fd >= 0 else { throw CocoaError(.fileWriteUnknown) }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        close(fd)
        guard written == bytes.count else { throw CocoaError(.fileWriteUnknown) }
        _ = rename(temporary.path, file.path)
        return file.path
    }
}

private func quiet() -> Logger {
    var logger = Logger(label: "test.plugins")
    logger.logLevel = .critical
    return logger
}

private func exec(_ folder: Folder, _ script: String, timeout: Int64 = 2000, limits: PluginLimits = PluginLimits(),
                  format: MetricTextFormat? = nil) throws -> ExecPlugin {
    let path = try folder.write("plugin.sh", "#!/bin/sh\n" + script, executable: true)
    return ExecPlugin(name: "test", command: [path], directory: folder.path, format: format, timeout: timeout, limits: limits)
}

private func failure(_ body: () throws -> SampleBatch) -> String? {
    do {
        _ = try body()
        return nil
    } catch {
        return "\(error)"
    }
}

@Suite("plugin output formats")
struct MetricTextTests {
    @Test("Prometheus text: HELP, TYPE, labels with escapes, special values, timestamps accepted")
    func prometheus() throws {
        var batch = SampleBatch()
        try MetricText.parse("""
            # HELP disk_temperature_celsius Temperature of a disk.
            # TYPE disk_temperature_celsius gauge
            disk_temperature_celsius{device="sda",model="Samsung \\"EVO\\"\\\\x"} 41
            disk_temperature_celsius{device="sdb",} 38.5 1700000000000
            # TYPE jobs_total counter
            jobs_total 12
            free_form NaN
            other +Inf

            """, into: &batch)
        #expect(batch.value("disk_temperature_celsius", ["device": "sda", "model": "Samsung \"EVO\"\\x"]) == 41)
        #expect(batch.value("disk_temperature_celsius", ["device": "sdb"]) == 38.5)
        #expect(batch.families["disk_temperature_celsius"] == MetricMetadata(kind: .gauge, help: "Temperature of a disk."))
        #expect(batch.families["jobs_total"]?.kind == .counter)
        #expect(batch.families["free_form"]?.kind == .untyped)
        #expect(batch.value("free_form")?.isNaN == true)
        #expect(batch.value("other") == .infinity)
    }

    @Test("Influx line protocol: measurement_field series, tags as labels, i/u/bool fields, strings left out")
    func influx() throws {
        let text = """
            gpu_fan,host=a,fan=0 speed=31.5,rpm=1200i,ok=true,label="quiet, \\"cool\\"" 1700000000000000000
            disk\\ io,dev=sda reads=7u
            """
        #expect(MetricText.detect(text) == .influx)
        var batch = SampleBatch()
        try MetricText.parse(text, into: &batch)
        #expect(batch.value("gpu_fan_speed", ["host": "a", "fan": "0"]) == 31.5)
        #expect(batch.value("gpu_fan_rpm", ["fan": "0"]) == 1200)
        #expect(batch.value("gpu_fan_ok") == 1)
        #expect(batch.value("gpu_fan_label") == nil)
        #expect(batch.value("disk_io_reads", ["dev": "sda"]) == 7)
        #expect(batch.count == 4)
    }

    @Test("garbage is refused with the line it is on", arguments: [
        ("ok 1\nthis is not a metric\n", "line 2: invalid value \"is\" for this"),
        ("a{b=\"c} 1\n", "line 1: unterminated value of label b"),
        ("a 1\na 2\n", "line 2: duplicate series a"),
        ("# TYPE a countr\n", "line 1: unknown metric type \"countr\" for a"),
        ("9lives 1\n", "line 1: invalid metric name \"9lives\""),
        ("m,t=1 f=abc\n", "line 1: invalid value \"abc\" for field f of m"),
    ])
    func garbage(text: String, message: String) {
        var batch = SampleBatch()
        #expect { try MetricText.parse(text, into: &batch) } throws: { "\($0)".hasPrefix(message) }
    }
}

@Suite("exec plugins: real processes")
struct ExecPluginTests {
    @Test("a script's Prometheus or Influx output becomes series")
    func output() throws {
        let folder = try Folder()
        var batch = try exec(folder, "echo '# TYPE room_temperature_celsius gauge'\necho 'room_temperature_celsius{room=\"lab\"} 21.5'\n").collect()
        #expect(batch.value("room_temperature_celsius", ["room": "lab"]) == 21.5)
        batch = try exec(folder, "echo 'ups,unit=1 load=0.42,on_battery=false'\n").collect()
        #expect(batch.value("ups_load", ["unit": "1"]) == 0.42)
        #expect(batch.value("ups_on_battery", ["unit": "1"]) == 0)
        // Runs in its own folder.
        try folder.write("value.txt", "7\n")
        batch = try exec(folder, "echo \"from_file $(cat value.txt)\"\n").collect()
        #expect(batch.value("from_file") == 7)
    }

    @Test("a hanging plugin is killed with its whole process group at its timeout")
    func hang() throws {
        let folder = try Folder()
        let plugin = try exec(folder, "sleep 30 &\necho $! > child.pid\necho 'early 1'\nsleep 30\n", timeout: 300)
        let message = failure { try plugin.collect() }
        #expect(message?.contains("timed out after 300ms; its process group was killed") == true, "\(message ?? "")")
        let pid = try #require(Int32(String(contentsOfFile: folder.path + "/child.pid", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        // The background child was in the group: gone (or a zombie awaiting its parent, init).
        var gone = false
        for _ in 0..<100 {
            let state = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8))?.split(separator: " ").dropFirst(2).first
            if state == nil || state == "Z" { gone = true; break }
            usleep(10_000)
        }
        #expect(gone, "the plugin's background child \(pid) survived")
    }

    @Test("a grandchild that leaves the process group with setsid does not outlive its plugin's run")
    func setsidEscape() throws {
        let folder = try Folder()
        // The escaped process closes the pipes, so the run ends at once and normally; it must be gone all the same.
        let plugin = try exec(folder, "setsid sh -c 'echo $$ > escaped.pid; exec sleep 300' </dev/null >/dev/null 2>&1 &\n"
                              + "while [ ! -s escaped.pid ]; do sleep 0.01; done\necho 'ok 1'\n")
        #expect(try plugin.collect().value("ok") == 1)
        let pid = try #require(Int32(String(contentsOfFile: folder.path + "/escaped.pid", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(getpgid(pid) != getpgid(getpid()), "it did leave the group")
        var gone = false
        for _ in 0..<100 {
            let state = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8))?.split(separator: " ").dropFirst(2).first
            if state == nil || state == "Z" { gone = true; break }
            usleep(10_000)
        }
        if !gone { kill(pid, SIGKILL) }
        #expect(gone, "the setsid grandchild \(pid) survived its plugin")
    }

    @Test("a crash, a failing exit status, garbage and a flood are reported, not stored")
    func failures() throws {
        let folder = try Folder()
        #expect(failure { try exec(folder, "echo 'x 1'\nkill -SEGV $$\n").collect() }?.contains("killed by signal 11") == true)
        let exit = failure { try exec(folder, "echo 'no sensors found' >&2\nexit 3\n").collect() }
        #expect(exit?.contains("exited with status 3: no sensors found") == true, "\(exit ?? "")")
        let garbage = failure { try exec(folder, "echo 'ok 1'\necho '<html>oops</html>'\n").collect() }
        #expect(garbage?.contains("plugin test: output line 2: invalid metric name \"<html>oops</html>\"") == true, "\(garbage ?? "")")
        let flood = failure { try exec(folder, "yes 'flood 1'\n", limits: PluginLimits(outputBytes: 100_000)).collect() }
        #expect(flood?.contains("printed more than 100000 bytes; its process group was killed") == true, "\(flood ?? "")")
        let series = failure {
            try exec(folder, "i=0; while [ $i -lt 50 ]; do echo \"s{i=\\\"$i\\\"} $i\"; i=$((i+1)); done\n", limits: PluginLimits(series: 20)).collect()
        }
        #expect(series?.contains("more than 20 series") == true, "\(series ?? "")")
        let missing = failure { try ExecPlugin(name: "test", command: ["/nonexistent/plugin"], directory: folder.path).collect() }
        #expect(missing?.contains("cannot start /nonexistent/plugin") == true, "\(missing ?? "")")
    }
}

@Suite("textfile plugins")
struct TextfilePluginTests {
    @Test("*.prom files are read; a bad one is skipped with its line number and flagged")
    func textfiles() throws {
        let folder = try Folder()
        try folder.write("backup.prom", "# TYPE backup_last_success_timestamp_seconds gauge\nbackup_last_success_timestamp_seconds 1.7e9\n")
        try folder.write("broken.prom", "good 1\nbad line here\n")
        try folder.write("notes.txt", "not a textfile\n")
        let recorder = LogRecorder()
        let plugin = TextfilePlugin(name: "files", directory: folder.path, logger: Logger(label: "test") { _ in recorder })
        var batch = try plugin.collect()
        _ = try plugin.collect()
        let reports = recorder.lines.withLock { $0 }
        #expect(reports.count == 1, "reported once, not every round: \(reports)")
        #expect(reports.first?.0 == .warning)
        #expect(reports.first?.2.contains("textfile.error=not in the Prometheus text format at line 2") == true, "\(reports)")
        #expect(reports.first?.2.contains("bad line") == false, "the log never quotes a textfile: \(reports)")
        #expect(reports.first?.2.hasSuffix("/broken.prom") == true, "\(reports)")
        #expect(batch.value("backup_last_success_timestamp_seconds") == 1.7e9)
        #expect(batch.value("good") == nil, "nothing of a bad file is kept")
        #expect(batch.value("node_textfile_scrape_error") == 1)
        #expect(batch.value("node_textfile_mtime_seconds", ["file": folder.path + "/backup.prom"]) != nil)
        try folder.write("broken.prom", "good 1\n")
        batch = try plugin.collect()
        #expect(batch.value("good") == 1)
        #expect(batch.value("node_textfile_scrape_error") == 0)
    }

    /// Hostile folders: what a local user who may write *.prom files could plant there.
    @Test("a textfile folder's devices, FIFOs, outside links and oversized files are refused, without blocking or quoting them")
    func hostileFolder() throws {
        let folder = try Folder()
        let elsewhere = try Folder()
        let secret = try elsewhere.write("shadow", "root:$6$secret-hash:19000:0:99999:7:::\n")
        try folder.write("good.prom", "good 1\n")
        #expect(symlink("/dev/zero", folder.path + "/zero.prom") == 0)
        #expect(symlink(secret, folder.path + "/shadow.prom") == 0)
        #expect(symlink(folder.path + "/good.prom", folder.path + "/alias.prom") == 0, "a link inside the folder is fine")
        #expect(mkfifo(folder.path + "/fifo.prom", 0o644) == 0)
        try folder.write("huge.prom", String(repeating: "x 1\n", count: 300))
        let recorder = LogRecorder()
        let plugin = TextfilePlugin(name: "files", directory: folder.path, limits: PluginLimits(outputBytes: 1000),
                                    logger: Logger(label: "test") { _ in recorder })
        let batch = try plugin.collect()   // returns: a FIFO with no writer would block a plain open(2) forever
        #expect(batch.value("good") == 1)
        #expect(batch.value("node_textfile_scrape_error") == 1)
        let reports = recorder.lines.withLock { $0 }.map(\.2)
        func report(_ file: String) -> String { reports.first { $0.hasSuffix("/\(file)") } ?? "none for \(file): \(reports)" }
        #expect(report("zero.prom").contains("is not a regular file (a character device)"))
        #expect(report("fifo.prom").contains("is not a regular file (a FIFO)"))
        #expect(report("shadow.prom").contains("resolves outside the allowed folders"))
        #expect(report("huge.prom").contains("is larger than 1000 bytes"))
        #expect(!reports.joined().contains("secret-hash"), "the log never shows what a link points at")
        #expect(reports.count == 4, "\(reports)")
    }
}

@Suite("plugin discovery")
struct PluginHostTests {
    @Test("plugins added, changed, broken and removed in the folder follow in the registry")
    func discovery() throws {
        let folder = try Folder()
        let registry = CollectorRegistry()
        let host = PluginHost(directory: folder.path, registry: registry, defaults: CollectorsConfiguration(), logger: quiet())
        #expect(host.scan().isEmpty)

        try folder.write("weather/fetch.sh", "#!/bin/sh\necho 'outside_temperature_celsius 4'\n", executable: true)
        try folder.write("weather/plugin.yml", "kind: exec\ncommand: ./fetch.sh\ninterval: 30s\n")
        var status = host.scan()
        #expect(status.map(\.name) == ["weather"])
        #expect(registry.names == ["weather"])
        let entry = try #require(registry.entries.first)
        #expect(entry.scheduled.interval == 30_000)
        #expect(try entry.scheduled.collector.collect().value("outside_temperature_celsius") == 4)

        // Changed: replaced under the same name.
        try folder.write("weather/plugin.yml", "kind: exec\ncommand: ./fetch.sh\ninterval: 10s\n")
        host.scan()
        #expect(registry.entries.first?.scheduled.interval == 10_000)

        // Broken: reported with file and line; the last good version keeps running.
        try folder.write("weather/plugin.yml", "kind: exec\ncommand: ./fetch.sh\nintervall: 10s\n")
        status = host.scan()
        #expect(status.first?.error?.contains("weather/plugin.yml:3:12: unknown key 'intervall'") == true, "\(status)")
        #expect(status.first?.running == true)
        #expect(registry.entries.first?.scheduled.interval == 10_000)

        // A second plugin, a textfile one; a name that belongs to a built-in is refused.
        try folder.write("jobs/plugin.yml", "kind: textfile\n")
        try folder.write("clash/plugin.yml", "name: procfs\nkind: textfile\n")
        status = host.scan()
        #expect(registry.names == ["jobs", "weather"])
        #expect(status.first { $0.manifest.hasSuffix("clash/plugin.yml") }?.error?.contains("belongs to a built-in collector") == true)

        // Removed: gone from the registry.
        try FileManager.default.removeItem(atPath: folder.path + "/weather")
        host.scan()
        #expect(registry.names == ["jobs"])
    }

    @Test("manifest mistakes name the file, the line and the key", arguments: [
        ("kind: exe\n", "plugin.yml:1:7: unknown kind 'exe' (known: exec, execd, textfile, lua, native)"),
        ("command: [a]\n", "plugin.yml:1:1: the manifest needs a kind"),
        ("kind: exec\n", "plugin.yml:1:1: an exec plugin needs a command"),
        ("kind: exec\ncommand: x\nformat: json\n", "plugin.yml:3:9: format must be prometheus, influx or auto"),
        ("kind: textfile\nlimits: { output: lots }\n", "plugin.yml:2:19: limits.output must be a size"),
    ])
    func mistakes(text: String, message: String) {
        #expect { try PluginManifest.parse(text, file: "plugin.yml", folder: "/tmp/x") } throws: { "\($0)".hasPrefix(message) }
    }
}

/// A shared object the package built, next to the test bundle.
private func built(_ file: String) throws -> String {
    let bundleDirectory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for candidate in [bundleDirectory, bundleDirectory.deletingLastPathComponent()] {
        let url = candidate.appendingPathComponent(file)
        if FileManager.default.fileExists(atPath: url.path) { return url.path }
    }
    throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: file])
}

@Suite("native plugins: dlopen and the C ABI")
struct NativePluginTests {
    @Test("the example plugin loads, gets its config and emits typed series with labels")
    func example() throws {
        let plugin = try NativePlugin(name: "native-example", path: try built("libVigilExamplePlugin.so"), config: "demo")
        var batch = try plugin.collect()
        #expect(batch.value("demo_rounds_total") == 1)
        #expect(batch.families["demo_rounds_total"]?.kind == .counter)
        #expect((batch.value("demo_file_handles", ["state": "maximum"]) ?? 0) > 0)
        #expect(batch.families["demo_file_handles"] == MetricMetadata(kind: .gauge, help: "File handles by state."))
        batch = try plugin.collect()
        #expect(batch.value("demo_rounds_total") == 2, "the plugin keeps its state between rounds")
        let limited = try NativePlugin(name: "limited", path: try built("libVigilExamplePlugin.so"), limits: PluginLimits(series: 1))
        #expect { try limited.collect() } throws: { "\($0)".contains("refused, the first: more than 1 series") }
    }

    @Test("a native plugin marks while its code runs; one that left its mark (it crashed the daemon) is skipped with how to re-enable it")
    func crashMarker() throws {
        let folder = try Folder()
        let marker = folder.path + "/native-plugins/native-example.running"
        let plugin = try NativePlugin(name: "native-example", path: try built("libVigilExamplePlugin.so"), config: "demo", crashMarker: marker)
        #expect(try plugin.collect().value("demo_rounds_total") == 1)
        #expect(!FileManager.default.fileExists(atPath: marker), "no mark once its code returned")
        // What a crash inside collect leaves behind:
        NativePlugin.mark(marker, "collect of /x/libVigilExamplePlugin.so")
        #expect {
            try NativePlugin(name: "native-example", path: try built("libVigilExamplePlugin.so"), crashMarker: marker)
        } throws: { error in
            "\(error)".contains("it crashed the daemon during its last collect of /x/libVigilExamplePlugin.so; it is skipped until it is fixed and \(marker) is deleted")
        }
        try FileManager.default.removeItem(atPath: marker)
        _ = try NativePlugin(name: "native-example", path: try built("libVigilExamplePlugin.so"), crashMarker: marker)
    }

    @Test("a plugin built for another ABI version is refused with what to do; a file that is no plugin too")
    func refused() throws {
        #expect {
            try NativePlugin(name: "old", path: try built("libVigilWrongABIPlugin.so"))
        } throws: { error in
            "\(error)".contains("was built for plugin ABI 42, and this Vigil speaks ABI 1: rebuild it against this Vigil's plugins/include/vigil_plugin.h")
        }
        #expect { try NativePlugin(name: "nvml", path: try built("libVigilFakeNVML.so")) } throws: {
            "\($0)".contains("does not export vigil_plugin_entry")
        }
        #expect { try NativePlugin(name: "gone", path: "/nonexistent/plugin.so") } throws: { "\($0)".contains("cannot load /nonexistent/plugin.so") }
    }

    @Test("a native manifest in the plugins folder: a bare file name is found beside the executable's products")
    func manifest() throws {
        let folder = try Folder()
        _ = try built("libVigilExamplePlugin.so")
        try folder.write("native/plugin.yml", "kind: native\npath: libVigilExamplePlugin.so\nconfig: host\n")
        try folder.write("old/plugin.yml", "kind: native\npath: \(try built("libVigilWrongABIPlugin.so"))\n")
        let registry = CollectorRegistry()
        let status = PluginHost(directory: folder.path, registry: registry, defaults: CollectorsConfiguration(), logger: quiet()).scan()
        #expect(registry.names == ["native"])
        #expect(try registry.entries.first?.scheduled.collector.collect().value("host_rounds_total") == 1)
        #expect(status.first { $0.manifest.hasSuffix("old/plugin.yml") }?.error?.contains("was built for plugin ABI 42") == true)
    }
}

/// Keeps what is logged, for checking levels and messages.
private final class LogRecorder: LogHandler, @unchecked Sendable {
    /// Level, message and metadata of each line.
    let lines = Mutex<[(Logger.Level, String, String)]>([])
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(event: LogEvent) {
        let metadata = (event.metadata ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        lines.withLock { $0.append((event.level, event.message.description, metadata)) }
    }
}

private func execd(_ folder: Folder, _ script: String, clock: ManualWallClock, timeout: Int64 = 2000,
                   limits: PluginLimits = PluginLimits(), logger: Logger = quiet()) throws -> ExecdPlugin {
    let path = try folder.write("daemon.sh", "#!/bin/sh\n" + script, executable: true)
    return ExecdPlugin(name: "long", command: [path], directory: folder.path, timeout: timeout, limits: limits, clock: clock, logger: logger)
}

@Suite("execd plugins: long-running children")
struct ExecdPluginTests {
    @Test("a newline on stdin asks for a sample; stderr goes to the log by its E!/W!/I! prefix")
    func answers() async throws {
        let folder = try Folder()
        let recorder = LogRecorder()
        let logger = Logger(label: "test") { _ in recorder }
        let plugin = try execd(folder, """
            n=0
            while read line; do
              n=$((n+1))
              echo "requests_total $n"
              echo "W! answered $n" >&2
              echo
            done
            """, clock: ManualWallClock(), logger: logger)
        for expected in 1...3 {
            let batch = try plugin.collect()
            #expect(batch.value("requests_total") == Double(expected))
            #expect(batch.value("vigil_plugin_restarts_total", ["plugin": "long"]) == 0)
        }
        let deadline = ContinuousClock.now + .seconds(5)
        while ContinuousClock.now < deadline, !recorder.lines.withLock({ $0.contains { $0.1 == "answered 3" } }) {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(recorder.lines.withLock { $0.contains { $0.0 == .warning && $0.1 == "answered 3" } })
    }

    @Test("a child that exits is started again after a backoff and counted")
    func crashAndRestart() throws {
        let folder = try Folder()
        let clock = ManualWallClock()
        let plugin = try execd(folder, "read line\necho 'up 1'\necho\nread line\nexit 7\n", clock: clock)
        #expect(try plugin.collect().value("up") == 1)
        #expect { try plugin.collect() } throws: { "\($0)".contains("long: closed its stdout: it exited with status 7") }
        #expect { try plugin.collect() } throws: { "\($0)".contains("starting again in 1s") }
        clock.advance(by: 1000)
        let batch = try plugin.collect()
        #expect(batch.value("up") == 1)
        #expect(batch.value("vigil_plugin_restarts_total", ["plugin": "long"]) == 1)
    }

    @Test("a hung child is killed after three unanswered requests; a flood is killed at once; garbage is an error")
    func containment() throws {
        let folder = try Folder()
        let clock = ManualWallClock()
        let hung = try execd(folder, "while read line; do :; done\n", clock: clock, timeout: 150)
        #expect { try hung.collect() } throws: { "\($0)".contains("no answer within 150ms") }
        #expect { try hung.collect() } throws: { "\($0)".contains("no answer within 150ms") }
        #expect { try hung.collect() } throws: { "\($0)".contains("left 3 requests unanswered; its process group was killed") }

        let floodFolder = try Folder(), garbageFolder = try Folder()
        let flood = try execd(floodFolder, "while read line; do yes 'flood 1'; done\n", clock: clock, limits: PluginLimits(outputBytes: 100_000))
        #expect { try flood.collect() } throws: { "\($0)".contains("printed more than 100000 bytes in one answer") }

        let garbage = try execd(garbageFolder, "while read line; do echo 'ok 1'; echo '%%% not metrics'; echo; done\n", clock: clock)
        #expect { try garbage.collect() } throws: { "\($0)".contains("output line 2: invalid metric name") }
        #expect { try garbage.collect() } throws: { "\($0)".contains("output line 2") }
    }
}

@Suite("lua plugins: vigil.collector in the sandbox")
struct LuaPluginTests {
    @Test("a script reads allowed files, globs, emits typed series; its every sets the interval")
    func collects() throws {
        let folder = try Folder()
        try folder.write("lua/load.lua", """
            local vigil = require "vigil"
            vigil.collector "load" {
              every = "5s",
              collect = function(emit)
                local one = vigil.read_file("/proc/loadavg"):match("^(%S+)")
                emit("lua_load1", tonumber(one), nil, "gauge", "Load over one minute, read by Lua.")
                local files = vigil.glob("/proc/sys/kernel/random/*_avail")
                emit("lua_random_files", #files, { kind = "avail" })
                local missing, why = vigil.read_file("/proc/no-such-file")
                emit("lua_missing_is_nil", missing == nil and 1 or 0, { why = why and "given" or "none" }, "untyped")
                emit("lua_rounds_total", 1, {}, "counter")
              end,
            }
            """)
        try folder.write("lua/plugin.yml", "kind: lua\npath: load.lua\n")
        let registry = CollectorRegistry()
        let host = PluginHost(directory: folder.path, registry: registry, defaults: CollectorsConfiguration(), logger: quiet())
        let status = host.scan()
        #expect(status.first?.error == nil, "\(status)")
        let entry = try #require(registry.entries.first)
        #expect(entry.scheduled.interval == 5000)
        let batch = try entry.scheduled.collector.collect()
        #expect((batch.value("lua_load1") ?? -1) >= 0)
        #expect(batch.families["lua_load1"] == MetricMetadata(kind: .gauge, help: "Load over one minute, read by Lua."))
        #expect(batch.value("lua_random_files", ["kind": "avail"]) == 1)
        #expect(batch.value("lua_missing_is_nil", ["why": "given"]) == 1)
        #expect(batch.families["lua_rounds_total"]?.kind == .counter)

        // The script edited on disk: loaded again at the next scan, no manifest change needed.
        try folder.write("lua/load.lua", """
            local vigil = require "vigil"
            vigil.collector "load" { collect = function(emit) emit("lua_edited", 2) end }
            """)
        host.scan()
        #expect(try registry.entries.first?.scheduled.collector.collect().value("lua_edited") == 2)
    }

    @Test("reads outside the allowed folders are refused, symbolic links included; errors name the script's line")
    func sandbox() throws {
        let folder = try Folder()
        let allowed = folder.url.appendingPathComponent("data").path
        try folder.write("data/ok.txt", "fine\n")
        try FileManager.default.createSymbolicLink(atPath: allowed + "/escape", withDestinationPath: "/etc/hostname")
        func plugin(_ body: String) throws -> LuaCollectorPlugin {
            let script = try folder.write("p.lua", "local vigil = require 'vigil'\nvigil.collector 'x' { collect = function(emit)\n\(body)\nend }\n")
            return try LuaCollectorPlugin(name: "x", script: script, allowed: [allowed], logger: quiet())
        }
        #expect(try plugin("emit('ok', #vigil.read_file('\(allowed)/ok.txt'))").collect().value("ok") == 5)
        #expect { try plugin("vigil.read_file('/etc/passwd')").collect() } throws: {
            "\($0)".contains("p.lua:3:") && "\($0)".contains("/etc/passwd is outside the allowed folders")
        }
        #expect { try plugin("vigil.read_file('\(allowed)/escape')").collect() } throws: { "\($0)".contains("is outside the allowed folders") }
        #expect { try plugin("vigil.read_file('\(allowed)/../p.lua')").collect() } throws: { "\($0)".contains("is outside the allowed folders") }
        #expect { try plugin("local t = nil; t.x = 1").collect() } throws: { "\($0)".contains("p.lua:3: attempt to index a nil value") }
        #expect { try plugin("while true do end").collect() } throws: { "\($0)".contains("instruction limit") }
        #expect { try plugin("emit('bad name', 1)").collect() } throws: { "\($0)".contains("invalid metric name \"bad name\"") }
        let empty = try folder.write("empty.lua", "local x = 1\n")
        #expect { try LuaCollectorPlugin(name: "e", script: empty, logger: quiet()) } throws: { "\($0)".contains("declares no vigil.collector") }
    }
}

@Suite("the plugins shipped in plugins/")
struct ShippedPluginTests {
    @Test("every example loads and collects (the disabled ones too)")
    func examples() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("plugins")
        let folders = try FileManager.default.contentsOfDirectory(atPath: root.path).sorted()
            .filter { FileManager.default.fileExists(atPath: root.appendingPathComponent("\($0)/plugin.yml").path) }
        #expect(folders == ["lua-thermal", "native-example", "python-execd-example", "shell-example", "textfile-example"])
        var kinds: Set<String> = []
        for folder in folders {
            let directory = root.appendingPathComponent(folder).path
            let file = directory + "/plugin.yml"
            var manifest = try PluginManifest.parse(try String(contentsOfFile: file, encoding: .utf8), file: file, folder: directory)
            manifest.enabled = true
            kinds.insert(manifest.kind.rawValue)
            let collector = try manifest.collector(defaults: CollectorsConfiguration(), luaLimits: .default, logger: quiet()).collector
            let batch = try collector.collect()
            switch folder {
            case "shell-example": #expect((batch.value("host_uptime_seconds") ?? 0) > 0)
            case "python-execd-example":
                #expect((batch.value("processes_count", ["state": "sleeping"]) ?? 0) + (batch.value("processes_count", ["state": "running"]) ?? 0) > 0)
            case "native-example": #expect(batch.value("example_rounds_total") == 1)
            case "textfile-example": #expect(batch.value("node_textfile_scrape_error") == 0)
            default: break
            }
        }
        #expect(kinds == Set(PluginManifest.Kind.allCases.map(\.rawValue)), "an example of every kind")
    }
}
