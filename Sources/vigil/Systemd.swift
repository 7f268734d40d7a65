import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// sd_notify(3) without libsystemd: one datagram of `KEY=VALUE` lines to the socket named in
/// `$NOTIFY_SOCKET` (a leading `@` is the abstract namespace). Nothing happens when it is unset, so the
/// daemon run by hand or by the tests behaves the same.
enum SystemdNotifier {
    static var socketPath: String? {
        ProcessInfo.processInfo.environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// Sends `state`; returns false when there is no socket or the send failed.
    @discardableResult
    static func notify(_ state: String) -> Bool {
        guard let path = socketPath else { return false }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        let abstract = bytes.first == UInt8(ascii: "@")
        if abstract { bytes[0] = 0 }
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count < capacity else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            if !abstract { raw[bytes.count] = 0 }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (abstract ? 0 : 1))
        let message = Array(state.utf8)
        let sent = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, message, message.count, Int32(MSG_NOSIGNAL), $0, length) }
        }
        return sent == message.count
    }

    /// `RELOADING=1` with the monotonic time systemd wants beside it.
    static func reloading() {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        notify("RELOADING=1\nMONOTONIC_USEC=\(Int64(now.tv_sec) * 1_000_000 + Int64(now.tv_nsec) / 1000)\nSTATUS=reloading")
    }

    /// Half of `$WATCHDOG_USEC` (how often to send `WATCHDOG=1`), when systemd asks for keep-alives.
    static var watchdogInterval: Duration? {
        guard socketPath != nil, let text = ProcessInfo.processInfo.environment["WATCHDOG_USEC"], let usec = Int64(text), usec > 0 else { return nil }
        return .microseconds(usec / 2)
    }
}

/// `vigil service-unit`: the systemd unit for this binary, with the hardening of the reference.
struct ServiceUnitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "service-unit",
        abstract: "Print a systemd unit (Type=notify, reload by SIGHUP, hardened) that runs this binary as a service.",
        discussion: """
            Install it as /etc/systemd/system/vigil.service, create the user (useradd --system vigil), copy the
            rules folder to /etc/vigil/rules, then systemctl daemon-reload && systemctl enable --now vigil. The
            service reads /etc/vigil/vigil.yml when there is one, takes its rules and plugins from /etc/vigil/rules
            and /etc/vigil/plugins and keeps its state in /var/lib/vigil (systemd's ConfigurationDirectory= and
            StateDirectory=), tells systemd when it is ready, reloading and stopping, and answers its watchdog. `systemctl reload vigil` (SIGHUP) re-reads the
            configuration, the plugins and the rules without dropping samples.
            """
    )

    @Option(name: .long, help: ArgumentHelp("The vigil binary the unit runs (default: this one).", valueName: "path"))
    var binary: String?

    @Option(name: .long, help: "The user it runs as.") var user = "vigil"

    func run() throws {
        let path = binary ?? URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL.resolvingSymlinksInPath().path
        print(Self.unit(binary: path, user: user), terminator: "")
    }

    static func unit(binary: String, user: String) -> String {
        """
        [Unit]
        Description=Vigil GPU host monitor and task allocator
        Wants=network-online.target
        After=network-online.target nvidia-persistenced.service

        [Service]
        Type=notify
        NotifyAccess=main
        ExecStart=\(binary) serve
        ExecReload=/bin/kill -HUP $MAINPID
        Restart=on-failure
        RestartSec=2s
        TimeoutStopSec=30s
        KillMode=mixed
        WatchdogSec=30s
        User=\(user)
        Group=\(user)
        SupplementaryGroups=video render
        StateDirectory=vigil
        ConfigurationDirectory=vigil
        RuntimeDirectory=vigil
        NoNewPrivileges=yes
        ProtectSystem=strict
        ProtectHome=read-only
        PrivateTmp=yes
        ProtectKernelTunables=yes
        ProtectKernelModules=yes
        ProtectControlGroups=yes
        ProtectClock=yes
        ProtectHostname=yes
        RestrictSUIDSGID=yes
        RestrictRealtime=yes
        RestrictNamespaces=yes
        LockPersonality=yes
        RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
        SystemCallArchitectures=native
        DevicePolicy=closed
        DeviceAllow=char-nvidia-frontend rw
        DeviceAllow=char-nvidia-uvm rw
        LimitNOFILE=65536

        [Install]
        WantedBy=multi-user.target

        """
    }
}
