import Testing
import VigilCore
import VigilRules
@testable import vigil

@Suite("configuration file")
struct ConfigurationLoaderTests {
    @Test("every key overrides its default")
    func full() throws {
        let configuration = try ConfigurationLoader.parse("""
            listen: 0.0.0.0:9500
            data_dir: /var/lib/vigil
            rules_dir: /etc/vigil/rules
            store:
              retention: 12h
              lookback: 2m
            lua:
              memory: 16MiB
              instructions: 500000
              deadline: 100ms
              output: 4KiB
              call_depth: 500
            collectors:
              interval: 2s
              timeout: 1s
              procfs: { interval: 5s }
              net: { enabled: false }
              nvml: { library: /opt/nvidia/libnvidia-ml.so.1, interval: 5s }
            """, file: "vigil.yml")
        #expect(configuration.listen == ListenAddress(host: "0.0.0.0", port: 9500))
        #expect(configuration.dataDirectory == "/var/lib/vigil")
        #expect(configuration.store.retentionMilliseconds == 12 * 3_600_000)
        #expect(configuration.store.lookbackMilliseconds == 120_000)
        #expect(configuration.lua.memoryBytes == 16 << 20)
        #expect(configuration.lua.instructions == 500_000)
        #expect(configuration.lua.deadlineMilliseconds == 100)
        #expect(configuration.lua.outputBytes == 4096)
        #expect(configuration.lua.callDepth == 500)
        #expect(configuration.collectors.settings(for: "procfs").intervalMilliseconds == 5000)
        #expect(configuration.collectors.settings(for: "procfs").timeoutMilliseconds == 1000)
        #expect(configuration.collectors.settings(for: "net").enabled == false)
        #expect(configuration.collectors.settings(for: "vigil").intervalMilliseconds == 2000)
        #expect(configuration.collectors.nvmlLibrary == "/opt/nvidia/libnvidia-ml.so.1")
        #expect(configuration.collectors.settings(for: "nvml").intervalMilliseconds == 5000)
    }

    @Test("rules and alerting: receivers, grouping, inhibit rules")
    func alerting() throws {
        let configuration = try ConfigurationLoader.parse("""
            rules:
              interval: 30s
              quarantine_after: 3
              watch_interval: 2s
            alerting:
              alertmanagers: [http://127.0.0.1:9093]
              resend_delay: 30s
              group_by: [alertname, gpu]
              group_wait: 5s
              group_interval: 1m
              repeat_interval: 2h
              external_url: http://gpu-1:9477
              receivers:
                - name: ops
                  webhook: http://127.0.0.1:8080/hook
                  match: '{severity="critical"}'
                  send_resolved: false
                - command: [/usr/local/bin/page, --team, gpu]
                  timeout: 3s
                - log: true
              inhibit_rules:
                - source: 'alertname="GpuLost"'
                  target: 'severity="warning"'
                  equal: [gpu]
            """, file: "vigil.yml")
        #expect(configuration.rules.defaultIntervalMilliseconds == 30_000)
        #expect(configuration.rules.quarantineAfter == 3)
        #expect(configuration.rules.watchIntervalMilliseconds == 2000)
        let alerting = configuration.alerting
        #expect(alerting.alertmanagers == ["http://127.0.0.1:9093"])
        #expect(alerting.resendDelayMilliseconds == 30_000)
        #expect(alerting.groupBy == ["alertname", "gpu"])
        #expect(alerting.groupWaitMilliseconds == 5000 && alerting.groupIntervalMilliseconds == 60_000)
        #expect(alerting.repeatIntervalMilliseconds == 7_200_000)
        #expect(alerting.externalURL == "http://gpu-1:9477")
        #expect(alerting.receivers.map(\.name) == ["ops", "command", "log"])
        #expect(alerting.receivers[0].kind == .webhook(url: "http://127.0.0.1:8080/hook"))
        #expect(alerting.receivers[0].match == #"{severity="critical"}"#)
        #expect(alerting.receivers[0].sendResolved == false)
        #expect(alerting.receivers[1].kind == .command(["/usr/local/bin/page", "--team", "gpu"]))
        #expect(alerting.receivers[1].timeoutMilliseconds == 3000)
        #expect(alerting.inhibitRules == [InhibitRuleConfiguration(source: #"alertname="GpuLost""#, target: #"severity="warning""#, equal: ["gpu"])])
    }

    @Test("remote write receivers and PromQL query sources")
    func fleet() throws {
        let configuration = try ConfigurationLoader.parse("""
            remote_write:
              - url: http://127.0.0.1:8428/api/v1/write
                interval: 2s
                queue: 5000
              - url: https://prom.example/api/v1/write
            query_sources:
              fleet: { url: "http://127.0.0.1:9090", timeout: 3s }
            """, file: "vigil.yml")
        #expect(configuration.remoteWrite.map(\.url) == ["http://127.0.0.1:8428/api/v1/write", "https://prom.example/api/v1/write"])
        #expect(configuration.remoteWrite[0].intervalMilliseconds == 2000 && configuration.remoteWrite[0].queueSamples == 5000)
        #expect(configuration.remoteWrite[1].intervalMilliseconds == 5000 && configuration.remoteWrite[1].timeoutMilliseconds == 10_000)
        #expect(configuration.querySources["fleet"]?.url == "http://127.0.0.1:9090" && configuration.querySources["fleet"]?.timeoutMilliseconds == 3000)
    }

    @Test("the dashboard's Chart.js may live elsewhere")
    func dashboard() throws {
        #expect(try ConfigurationLoader.parse("dashboard: { chart_js: /opt/chart.js/chart.umd.js }\n", file: "vigil.yml").chartJS
                == "/opt/chart.js/chart.umd.js")
        #expect(VigilConfiguration().chartJS == nil)
    }

    @Test("an empty file means the embedded defaults")
    func empty() throws {
        #expect(try ConfigurationLoader.parse("", file: "vigil.yml") == VigilConfiguration())
        #expect(VigilConfiguration().listen.description == "127.0.0.1:9477")
    }

    @Test("mistakes name the file, the line and the key", arguments: [
        ("listen: 127.0.0.1:9477\nretension: 24h\n", "vigil.yml:2:12: unknown key 'retension'"),
        ("lua:\n  memroy: 8MiB\n", "vigil.yml:2:11: unknown key 'memroy' in lua"),
        ("store:\n  retention: forever\n", "vigil.yml:2:14: store.retention must be a duration"),
        ("collectors:\n  procfs:\n    interval: 0s\n", "vigil.yml:3:15: collectors.procfs.interval must be longer than 0"),
        ("listen: nowhere\n", "vigil.yml:1:9: listen must be HOST:PORT"),
        ("lua: [1, 2]\n", "vigil.yml:1:6: lua must be a mapping"),
        ("lua:\n  memory: lots\n", "vigil.yml:2:11: lua.memory must be a size"),
        ("collectors:\n  procfss: { interval: 2s }\n", "vigil.yml:2:12: unknown collector 'procfss' in collectors"),
        ("a: [unclosed\n", "vigil.yml: not valid YAML"),
        ("remote_write:\n  - interval: 1s\n", "vigil.yml:2:5: remote_write[0] needs a url"),
        ("remote_write:\n  - url: localhost:8428\n", "vigil.yml:2:10: remote_write[0].url must be an http:// or https:// URL"),
        ("query_sources:\n  fleet: { timeout: 1s }\n", "vigil.yml:2:10: query_sources.fleet needs a url"),
        ("collectors:\n  procfs: { library: x.so }\n", "vigil.yml:2:22: unknown key 'library' in collectors.procfs"),
        ("dashboard: { chartjs: x.js }\n", "vigil.yml:1:23: unknown key 'chartjs' in dashboard"),
        ("alerting:\n  receivers:\n    - webhook: ftp://x\n", "vigil.yml:3:16: alerting.receivers[0].webhook must be an http:// or https:// URL"),
        ("alerting:\n  receivers:\n    - name: x\n", "vigil.yml:3:7: alerting.receivers[0] needs one of log: true, webhook: URL or command"),
        ("alerting:\n  receivers:\n    - log: true\n      mtach: x\n", "vigil.yml:4:14: unknown key 'mtach' in alerting.receivers[0]"),
        ("alerting:\n  receivers:\n    - log: true\n      match: 'gpu=~\"(\"'\n", "vigil.yml:4:14: alerting.receivers[0].match:"),
        ("alerting:\n  inhibit_rules:\n    - source: 'a=b'\n", "vigil.yml:3:7: an inhibit rule needs source and target"),
        ("alerting:\n  group_wait: soon\n", "vigil.yml:2:15: alerting.group_wait must be a duration"),
        ("rules:\n  quarantine_after: many\n", "vigil.yml:2:21: rules.quarantine_after must be a whole number"),
    ])
    func mistakes(text: String, message: String) {
        do {
            _ = try ConfigurationLoader.parse(text, file: "vigil.yml")
            Issue.record("accepted: \(text)")
        } catch {
            #expect("\(error)".hasPrefix(message), "\(error)")
        }
    }
}
