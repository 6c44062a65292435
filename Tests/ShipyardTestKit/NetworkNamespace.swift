import Foundation
import Synchronization

/// A host of the test's own: a network namespace joined to this machine by a veth pair, its
/// address `address` inside and `hostAddress` on this machine's side, a /30 of 198.18.0.0/15
/// (RFC 2544's range for benchmarking, routed nowhere). Faults are made inside it, where they
/// touch nothing else: a silent partition (iptables DROP both ways, no reset), and a delay of every
/// packet it sends (netem where the kernel has it; this machine's kernel has no sch_netem, so the
/// packets are held in the kernel by an NFQUEUE rule and released by `delayer.py` after the delay).
/// The namespace and its link go with the object; those of test processes that died go at the
/// next start.
public final class NetworkNamespace: @unchecked Sendable {
    public let name: String
    public let address: String
    public let hostAddress: String
    let hostLink: String
    let scratch: String
    private let lock = NSLock()
    private var delayer: Subprocess?
    private static let counter = Mutex(0)

    /// Root, iproute2, nsenter and iptables are here (`make test-deps` installs iptables).
    public static let isAvailable: Bool = {
        getuid() == 0 && ["/usr/sbin/ip", "/usr/bin/nsenter", "/usr/sbin/iptables"].allSatisfy(FileManager.default.isExecutableFile(atPath:))
    }()

    public init(scratch: String) throws {
        Self.removeLeftovers()
        let index = Self.counter.withLock { value in
            value += 1
            return value
        }
        let pid = getpid()
        name = "shipyard-\(pid)-\(index)"
        hostLink = "sy\(pid)h\(index)"
        self.scratch = scratch
        // A /30 no interface of this machine has: from one derived from the pid and the index.
        let used = (try? Run.checked("/usr/sbin/ip", ["-o", "-4", "addr", "show"])) ?? ""
        var chosen: (String, String)?
        for step in 0..<32768 {
            let block = (Int(pid) * 7 + index * 131 + step) % 32768
            let base = 198 << 24 | 18 << 16 | block * 4
            func dotted(_ value: Int) -> String { "\(value >> 24 & 255).\(value >> 16 & 255).\(value >> 8 & 255).\(value & 255)" }
            let (host, inside) = (dotted(base + 1), dotted(base + 2))
            if !used.contains(" \(host)/"), !used.contains(" \(inside)/") {
                chosen = (host, inside)
                break
            }
        }
        guard let chosen else { throw ProcessFailure(description: "no free /30 in 198.18.0.0/15") }
        (hostAddress, address) = chosen
        let inner = "eth0"
        try Self.ip(["netns", "add", name])
        do {
            try Self.ip(["link", "add", hostLink, "type", "veth", "peer", "name", inner, "netns", name])
            try Self.ip(["addr", "add", hostAddress + "/30", "dev", hostLink])
            try Self.ip(["link", "set", hostLink, "up"])
            try Self.ip(["-n", name, "link", "set", "lo", "up"])
            try Self.ip(["-n", name, "addr", "add", address + "/30", "dev", inner])
            try Self.ip(["-n", name, "link", "set", inner, "up"])
        } catch {
            remove()
            throw error
        }
    }

    deinit {
        lock.withLock { delayer?.kill9() }
        remove()
    }

    /// Runs a program inside: prepend to its command line.
    public var prefix: [String] { ["/usr/bin/nsenter", "--net=/run/netns/\(name)", "--"] }

    /// Every packet between this host and `hostAddress` is dropped, silently (no reset, no
    /// unreachable): TCP sessions hang as they do when a switch or a firewall loses the link.
    public func partition() throws {
        try iptables(["-A", "OUTPUT", "-d", hostAddress, "-j", "DROP"])
        try iptables(["-A", "INPUT", "-s", hostAddress, "-j", "DROP"])
    }

    /// Every packet this host sends to `hostAddress` arrives `seconds` late, in order.
    public func delay(seconds: Double) throws {
        try heal()
        let script = scratch + "/delayer.py"
        try writeFile(script, Data(Self.delayerScript.utf8))
        let ready = scratch + "/delayer-\(name).ready"
        unlink(ready)
        let queue = 1000 + Int(getpid() % 30000)
        let log = open(scratch + "/delayer-\(name).log", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        defer { close(log) }
        let process = try Subprocess(prefix[0], Array(prefix.dropFirst()) + [try HTTPGitServer.python(), script, "\(queue)", "\(seconds)", ready], stdout: log, stderr: log)
        lock.withLock { delayer = process }
        for _ in 0..<200 where !FileManager.default.fileExists(atPath: ready) && process.isRunning { usleep(25_000) }
        guard FileManager.default.fileExists(atPath: ready) else {
            throw ProcessFailure(description: "the delayer did not bind its queue: " + ((try? String(contentsOfFile: scratch + "/delayer-\(name).log", encoding: .utf8)) ?? ""))
        }
        try iptables(["-A", "OUTPUT", "-d", hostAddress, "-j", "NFQUEUE", "--queue-num", "\(queue)"])
    }

    /// The link as it was: rules flushed, the delayer stopped (the packets it held are dropped
    /// and sent again by TCP).
    public func heal() throws {
        try iptables(["-F"])
        lock.withLock {
            delayer?.kill9()
            delayer = nil
        }
    }

    func iptables(_ arguments: [String]) throws {
        _ = try Run.checked(prefix[0], Array(prefix.dropFirst()) + ["/usr/sbin/iptables", "-w", "5"] + arguments)
    }

    func remove() {
        // The namespace's end of the pair goes with it, and the pair with it.
        _ = try? Run.capture("/usr/sbin/ip", ["netns", "delete", name])
        _ = try? Run.capture("/usr/sbin/ip", ["link", "delete", hostLink])
    }

    static func ip(_ arguments: [String]) throws {
        _ = try Run.checked("/usr/sbin/ip", arguments)
    }

    /// Namespaces of test processes no longer running (`shipyard-<pid>-<n>`) go.
    static func removeLeftovers() {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/run/netns")) ?? [] where name.hasPrefix("shipyard-") {
            let parts = name.split(separator: "-")
            guard parts.count == 3, let pid = Int32(parts[1]), pid != getpid(), kill(pid, 0) != 0, errno == ESRCH else { continue }
            _ = try? Run.capture("/usr/sbin/ip", ["netns", "delete", name])
            _ = try? Run.capture("/usr/sbin/ip", ["link", "delete", "sy\(pid)h\(parts[2])"])
        }
    }

    /// Holds each packet of an NFQUEUE queue for a fixed time, then lets it go (NF_ACCEPT), in
    /// order: netem's `delay` in user space, over netlink (nfnetlink_queue), with no library.
    static let delayerScript = #"""
        import collections, select, socket, struct, sys, time

        queue, delay, ready = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
        NFNL_SUBSYS_QUEUE, MSG_PACKET, MSG_VERDICT, MSG_CONFIG = 3, 0, 1, 2
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)  # NETLINK_NETFILTER
        sock.setsockopt(socket.SOL_SOCKET, 33, 16 << 20)  # SO_RCVBUFFORCE
        sock.bind((0, 0))
        seq = 0

        def attr(kind, payload):
            length = 4 + len(payload)
            return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)

        def send(kind, payload, flags=1):
            global seq
            seq += 1
            body = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(queue)) + payload
            sock.send(struct.pack("=IHHII", 16 + len(body), NFNL_SUBSYS_QUEUE << 8 | kind, flags, seq, 0) + body)

        def configure(payload):
            send(MSG_CONFIG, payload, flags=1 | 4)  # NLM_F_REQUEST | NLM_F_ACK
            reply = sock.recv(65536)
            length, kind = struct.unpack_from("=IH", reply)
            error = struct.unpack_from("=i", reply, 16)[0] if kind == 2 else 0
            if error:
                sys.exit(f"delayer: queue {queue}: netlink error {error}")

        configure(attr(1, struct.pack("=BxH", 1, socket.htons(socket.AF_INET))))  # bind
        configure(attr(2, struct.pack("!IB", 0, 1)))  # copy the metadata only
        configure(attr(3, struct.pack("!I", 100000)))  # room for many packets
        open(ready, "w").close()
        held = collections.deque()
        while True:
            wait = max(0.0, held[0][0] - time.monotonic()) if held else None
            if select.select([sock], [], [], wait)[0]:
                try:
                    data = sock.recv(1 << 20)
                except OSError:
                    data = b""  # ENOBUFS: the kernel dropped some; TCP sends them again
                offset = 0
                while offset + 16 <= len(data):
                    length, kind = struct.unpack_from("=IH", data, offset)
                    if length < 16:
                        break
                    if kind == NFNL_SUBSYS_QUEUE << 8 | MSG_PACKET:
                        at, end = offset + 20, offset + length
                        while at + 4 <= end:
                            size, key = struct.unpack_from("=HH", data, at)
                            if size < 4:
                                break
                            if key & 0x7FFF == 1:  # NFQA_PACKET_HDR: the packet's id first
                                held.append((time.monotonic() + delay, struct.unpack_from("!I", data, at + 4)[0]))
                            at += (size + 3) & ~3
                    offset += (length + 3) & ~3
            now = time.monotonic()
            while held and held[0][0] <= now:
                send(MSG_VERDICT, attr(2, struct.pack("!II", 1, held.popleft()[1])))  # NF_ACCEPT
        """#
}
