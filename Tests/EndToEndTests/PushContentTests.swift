import Foundation
import ShipyardCore
import ShipyardDaemon
import ShipyardGit
import ShipyardTestKit
import Testing

/// Repository content is untrusted input: what a push can do to the daemon and the host.
@Suite(.serialized) struct PushContentTests {
    typealias World = SequenceTests.World

    static let oneStage = EngineReviewTests.oneStage

    /// A task sees exactly the commit's bytes: a submodule as an empty folder (it stopped every
    /// task), no .gitattributes filter, executables and links as committed.
    @Test func anExportHoldsExactlyWhatTheCommitHolds() async throws {
        let dir = try TemporaryDirectory()
        let upstream = try UpstreamRepository(in: dir.path)
        try upstream.commit([
            "shipyard.yaml": Self.oneStage, ".gitattributes": "*.txt text eol=crlf\n*.c ident\n",
            "notes.txt": "one\ntwo\n", "code.c": "/* $Id$ */\n", "bin/run": "#!/bin/sh\n",
        ])
        try upstream.git("update-index", "--chmod=+x", "bin/run")
        try FileManager.default.createSymbolicLink(atPath: upstream.work + "/latest", withDestinationPath: "notes.txt")
        try upstream.git("add", "latest")
        // A gitlink, as `git submodule add` leaves one.
        try upstream.git("update-index", "--add", "--cacheinfo", "160000,\(try upstream.head()),vendor/lib")
        // Names and a link target that are not UTF-8: byte 0xff and byte 0xfe, which a decoder
        // would both turn into U+FFFD, one name.
        try Run.checked("/bin/sh", ["-c", #"cd "$1" && mkdir raw && printf ff > "raw/a$(printf '\377')" && printf fe > "raw/a$(printf '\376')" && ln -s "t$(printf '\377')" raw/link && git add raw"#, "sh", upstream.work])
        let commit = try upstream.commit([:], message: "content")
        let report = try dir.write("report", """
            #!/bin/sh
            { od -c notes.txt | head -2; cat code.c; stat -c '%A' bin/run notes.txt; readlink latest
              [ -d vendor/lib ] && ls -A vendor/lib | wc -l
              for f in raw/a*; do printf '%s' "$f" | od -An -tx1; cat "$f"; echo; done; readlink raw/link | od -An -tx1; } > \(dir.path)/seen.txt 2>&1

            """, mode: 0o755)
        let daemon = try RunningDaemon(directory: dir.path, config: RunningDaemon.oneTask(project: "content", upstream: upstream.fileURL, program: report))
        #expect(await daemon.waitFor("content") { $0.shipyardCommit == commit } != nil, "\(daemon.log)")
        #expect(try daemon.ctl(["trigger", "delivery", "--project", "content", "--service", "svc"]).status == 0)
        #expect(await eventually { FileManager.default.fileExists(atPath: dir.path + "/seen.txt") })
        #expect(await eventually {
            (try? daemon.ctl(["sequences"]).stdout.contains("finished  pass")) == true
        }, "\(daemon.log)")
        let seen = try String(contentsOfFile: dir.path + "/seen.txt", encoding: .utf8)
        #expect(seen.contains("o   n   e  \\n   t   w   o  \\n"), "\(seen)")  // no \r added
        #expect(seen.contains("/* $Id$ */"), "\(seen)")  // no ident expansion
        #expect(seen.contains("-r-xr-x---\n-r--r-----\nnotes.txt\n0\n"), "\(seen)")  // nothing for others
        // The exact bytes: two files, each with its own content, and the link's target.
        #expect(seen.contains(" 72 61 77 2f 61 fe\nfe\n 72 61 77 2f 61 ff\nff\n 74 ff 0a\n"), "\(seen)")
    }

    /// A task runs as the daemon's user and can make the shared export writable, and touch any
    /// file the daemon could keep a seal in: the next task must still see the commit, not what the
    /// task left.
    @Test func aTaskCannotChangeWhatTheNextTaskSees() async throws {
        let world = try World(testCommand: { dir in
            try writeFile(dir + "/test", Data("#!/bin/sh\ncat charts/helloservice/values.yaml > \(dir)/seen.txt\n".utf8), mode: 0o755)
            return dir + "/test"
        }, extraConfig: "")
        #expect(await world.ready())
        // je-deployment tampers: make the file writable, change it.
        let tamper = try world.dir.write("tamper", """
            #!/bin/sh
            chmod u+w charts/helloservice/values.yaml && echo "replicas: 99" > charts/helloservice/values.yaml
            # and covers its tracks: any seal it can reach, it renews.
            touch ../.sealed-* ../* 2>/dev/null

            """, mode: 0o755)
        try world.daemon.write(config: """
            projects:
              - name: fulltour
                upstream: \(world.upstream.fileURL)
                pollInterval: 1s
            tasks:
              je-deployment:
                command: ["\(tamper)"]
              je-test:
                command: ["\(world.dir.path)/test"]
            """)
        world.daemon.signal(SIGHUP)
        #expect(await eventually { world.daemon.log.contains("config reloaded") })
        let context = try world.trigger()
        #expect(await world.waitState(context, "qa", "finished"))
        #expect(try String(contentsOfFile: world.dir.path + "/seen.txt", encoding: .utf8) == "replicas: 1\n")
        #expect(world.daemon.log.contains("was changed after it was made"))
    }

    /// A push cannot make the daemon inflate a huge shipyard.yaml: the size comes from the
    /// object's header, and the last good shipyard stays.
    @Test func aHugeShipyardIsRefusedFromItsHeader() async throws {
        let dir = try TemporaryDirectory()
        let upstream = try UpstreamRepository(in: dir.path)
        let good = try upstream.commit(["shipyard.yaml": Self.oneStage])
        let daemon = try RunningDaemon(directory: dir.path, config: "projects:\n  - name: big\n    upstream: \(upstream.fileURL)\n    pollInterval: 1s\n")
        #expect(await daemon.waitFor("big") { $0.shipyardCommit == good } != nil)
        // 512 MiB of zeros (a sparse file) compress to almost nothing in the push.
        let huge = upstream.work + "/shipyard.yaml"
        let fd = open(huge, O_WRONLY | O_TRUNC | O_CLOEXEC)
        #expect(ftruncate(fd, 512 << 20) == 0)
        close(fd)
        try upstream.git("add", "shipyard.yaml")
        let bad = try upstream.commit([:], message: "huge")
        let status = await daemon.waitFor("big") { $0.commit == bad && $0.error != nil }
        #expect(status?.shipyardCommit == good)
        #expect(status?.error?.message.contains("536870912") == true, "\(String(describing: status?.error))")
        // The daemon never held it: its memory stays that of a daemon.
        let resident = ((try? String(contentsOfFile: "/proc/\(daemon.pid)/status", encoding: .utf8)) ?? "").split(separator: "\n")
            .first { $0.hasPrefix("VmRSS:") }.flatMap { Int($0.split(separator: " ", omittingEmptySubsequences: true)[1]) } ?? 0
        #expect(resident > 0 && resident < 200_000, "shipyardd holds \(resident) KB")
    }

    /// A 1 MB shipyard.yaml that aliases one 450 KB string 45,000 times in a task's properties
    /// (20 GB once expanded) is refused while it is read, with its place; the last good shipyard
    /// stays, the daemon's memory stays that of a daemon, and a restart does not read it again
    /// into a crash.
    @Test func anAliasBombInAShipyardIsRefusedWhileItIsRead() async throws {
        let dir = try TemporaryDirectory()
        let upstream = try UpstreamRepository(in: dir.path)
        let good = try upstream.commit(["shipyard.yaml": Self.oneStage])
        let config = "projects:\n  - name: bomb\n    upstream: \(upstream.fileURL)\n    pollInterval: 1s\n"
        var daemon = try RunningDaemon(directory: dir.path, config: config)
        #expect(await daemon.waitFor("bomb") { $0.shipyardCommit == good } != nil)
        let bomb = """
            apiVersion: spec.keptn.sh/0.2.4
            kind: Shipyard
            metadata:
              name: bomb
            spec:
              stages:
                - name: qa
                  sequences:
                    - name: delivery
                      tasks:
                        - name: deploy
                          properties:
                            blob: &b "\(String(repeating: "x", count: 450_000))"
                            copies:

            """ + String(repeating: "                  - *b\n", count: 45_000)
        let bad = try upstream.commit(["shipyard.yaml": bomb])
        for round in 0..<2 {
            let status = await daemon.waitFor("bomb") { $0.commit == bad && $0.error != nil }
            #expect(status?.shipyardCommit == good)
            #expect(status?.error?.message.contains("the document expands to more than 4 MiB of text once its aliases are expanded") == true, "\(String(describing: status?.error))")
            #expect(status?.error?.line == 23 && status?.error?.column == 21, "\(String(describing: status?.error))")
            let resident = ((try? String(contentsOfFile: "/proc/\(daemon.pid)/status", encoding: .utf8)) ?? "").split(separator: "\n")
                .first { $0.hasPrefix("VmRSS:") }.flatMap { Int($0.split(separator: " ", omittingEmptySubsequences: true)[1]) } ?? 0
            #expect(resident > 0 && resident < 200_000, "shipyardd holds \(resident) KB")
            #expect(daemon.isRunning)
            if round == 0 {
                #expect(await daemon.stop() == 0)
                daemon = try RunningDaemon(directory: dir.path, config: config)
            }
        }
        await daemon.stop()
    }

    /// A file:// upstream and a pushed 1.25 GiB file of zeros (a megabyte in Git): libgit2
    /// inflates a blob whole to pack it, so the fetch child hits its memory limit and fails with
    /// a message saying so; the daemon keeps its last good shipyard and its own memory.
    @Test func aHugeFileOverFileFailsTheFetchChildNotTheHost() async throws {
        let dir = try TemporaryDirectory()
        let upstream = try UpstreamRepository(in: dir.path)
        let good = try upstream.commit(["shipyard.yaml": Self.oneStage])
        let daemon = try RunningDaemon(directory: dir.path, config: "projects:\n  - name: big\n    upstream: \(upstream.fileURL)\n    pollInterval: 1s\n")
        #expect(await daemon.waitFor("big") { $0.shipyardCommit == good } != nil)
        // The loose object written directly (git add would take half a minute to hash and
        // compress it): 1.25 GiB of zeros, about 1.2 MiB compressed.
        let blob = try Run.checked("/usr/bin/python3", ["-c", #"""
            import hashlib, os, sys, zlib
            size = 5 << 28
            header = b"blob %d\0" % size
            chunk = bytes(1 << 24)
            sha, z = hashlib.sha1(header), zlib.compressobj(1)
            parts = [z.compress(header)]
            for _ in range(size // len(chunk)):
                sha.update(chunk)
                parts.append(z.compress(chunk))
            parts.append(z.flush())
            name = sha.hexdigest()
            folder = os.path.join(sys.argv[1], "objects", name[:2])
            os.makedirs(folder, exist_ok=True)
            with open(os.path.join(folder, name[2:]), "wb") as f:
                f.write(b"".join(parts))
            print(name)
            """#, upstream.work + "/.git"]).trimmingCharacters(in: .whitespacesAndNewlines)
        try upstream.git("update-index", "--add", "--cacheinfo", "100644,\(blob),zeros.bin")
        let bad = try upstream.commit([:], message: "zeros")
        let status = await daemon.waitFor("big", timeout: .seconds(120)) { $0.error != nil }
        #expect(status?.shipyardCommit == good && status?.commit != bad)
        #expect(status?.error?.message.contains("memory") == true, "\(String(describing: status?.error))")
        print("a huge file over file://: \(status?.error?.message ?? "")")
        let resident = ((try? String(contentsOfFile: "/proc/\(daemon.pid)/status", encoding: .utf8)) ?? "").split(separator: "\n")
            .first { $0.hasPrefix("VmRSS:") }.flatMap { Int($0.split(separator: " ", omittingEmptySubsequences: true)[1]) } ?? 0
        #expect(resident > 0 && resident < 200_000, "shipyardd holds \(resident) KB")
        #expect(daemon.isRunning)
        await daemon.stop()
    }

    /// A file:// upstream: a push to main copies main's new objects only, never those of a big
    /// branch beside it (libgit2's local transport packed every ref's objects on each fetch).
    @Test func aFileUpstreamCopiesOnlyTheWatchedBranch() async throws {
        let dir = try TemporaryDirectory()
        let upstream = try UpstreamRepository(in: dir.path)
        let first = try upstream.commit(["shipyard.yaml": Self.oneStage])
        // 8 MiB that do not compress, on another branch.
        try upstream.git("checkout", "-q", "-b", "assets")
        let noise = upstream.work + "/noise.bin"
        try Run.checked("/bin/dd", ["if=/dev/urandom", "of=\(noise)", "bs=1M", "count=8", "status=none"])
        try upstream.git("add", "noise.bin")
        try upstream.commit([:], message: "assets", branch: "assets")
        try upstream.git("checkout", "-q", "main")
        let daemon = try RunningDaemon(directory: dir.path, config: "projects:\n  - name: local\n    upstream: \(upstream.fileURL)\n    pollInterval: 1s\n")
        #expect(await daemon.waitFor("local") { $0.shipyardCommit == first } != nil, "\(daemon.log)")
        var last = first
        for i in 0..<3 {
            last = try upstream.commit(["README": "\(i)\n"])
            #expect(await daemon.waitFor("local") { $0.commit == last } != nil)
        }
        let size = try Run.checked("/usr/bin/du", ["-sk", daemon.state + "/projects/local/mirror.git"]).split(separator: "\t").first.flatMap { Int($0) } ?? -1
        #expect(size >= 0 && size < 1024, "the mirror holds \(size) KiB: the other branch was copied")
        // What the mirror holds is whole: the delivery's export has the commit's files.
        #expect(await daemon.waitFor("local") { $0.error == nil && $0.commit == last } != nil)
    }

    /// A shallow clone as upstream: read directly over file:// (the tip's commit and tree are all
    /// a delivery needs); over git:// libgit2 1.5 cannot, and the message says why.
    @Test func aShallowUpstreamWorksOverFileAndIsNamedOverTheNetwork() async throws {
        let dir = try TemporaryDirectory()
        let upstream = try UpstreamRepository(in: dir.path)
        try upstream.commit(["README": "history\n"])
        let tip = try upstream.commit(["shipyard.yaml": Self.oneStage])
        try Run.checked("/usr/bin/git", ["clone", "-q", "--bare", "--depth", "1", upstream.fileURL, dir.path + "/shallow.git"])
        for daemon in ["a", "b"] { try FileManager.default.createDirectory(atPath: dir.path + "/" + daemon, withIntermediateDirectories: true) }
        let local = try RunningDaemon(directory: dir.path + "/a", config: "projects:\n  - name: s\n    upstream: file://\(dir.path)/shallow.git\n    pollInterval: 1h\n")
        #expect(await local.waitFor("s") { $0.shipyardCommit == tip } != nil, "\(local.log)")
        let server = try GitDaemonServer(root: dir.path)
        let remote = try RunningDaemon(directory: dir.path + "/b", config: "projects:\n  - name: s\n    upstream: \(server.url("shallow.git"))\n    pollInterval: 1h\n")
        let status = await remote.waitFor("s") { $0.error != nil }
        #expect(status?.error?.message.contains("is the upstream a shallow clone?") == true, "\(String(describing: status?.error))")
    }

    /// A branch that points at a tag object is named as such, not as a commit "not in the mirror".
    @Test func aBranchPointingAtATagObjectIsNamed() async throws {
        let dir = try TemporaryDirectory()
        let upstream = try UpstreamRepository(in: dir.path)
        let good = try upstream.commit(["shipyard.yaml": Self.oneStage])
        try upstream.git("tag", "-a", "-m", "release", "v1")
        try upstream.git("push", "-q", "origin", "v1")
        for daemon in ["a", "b"] { try FileManager.default.createDirectory(atPath: dir.path + "/" + daemon, withIntermediateDirectories: true) }
        let server = try GitDaemonServer(root: dir.path)
        let remote = try RunningDaemon(directory: dir.path + "/b", config: "projects:\n  - name: t\n    upstream: \(server.url("upstream.git"))\n    pollInterval: 1s\n")
        let local = try RunningDaemon(directory: dir.path + "/a", config: "projects:\n  - name: t\n    upstream: \(upstream.fileURL)\n    pollInterval: 1s\n")
        #expect(await remote.waitFor("t") { $0.shipyardCommit == good } != nil)
        #expect(await local.waitFor("t") { $0.shipyardCommit == good } != nil)
        let tag = try Run.checked("/usr/bin/git", ["-C", upstream.bare, "rev-parse", "refs/tags/v1"]).trimmingCharacters(in: .whitespacesAndNewlines)
        // git itself refuses to do this; a server with a broken hook or a hand edit can.
        try writeFile(upstream.bare + "/refs/heads/main", Data((tag + "\n").utf8))
        let overNetwork = await remote.waitFor("t") { $0.error != nil }
        #expect(overNetwork?.error?.message.contains("points at a tag") == true, "\(String(describing: overNetwork?.error))")
        let overFile = await local.waitFor("t") { $0.error != nil }
        #expect(overFile?.error?.message.contains("does not point at a commit") == true, "\(String(describing: overFile?.error))")
        #expect(overNetwork?.shipyardCommit == good && overFile?.shipyardCommit == good)
    }

    /// A fetch cut mid-pack by the network keeps the mirror, which then takes the next fetch.
    @Test func aFetchCutMidPackKeepsTheMirror() async throws {
        let dir = try TemporaryDirectory()
        let upstream = try UpstreamRepository(in: dir.path)
        let first = try upstream.commit(["shipyard.yaml": Self.oneStage])
        let server = try GitDaemonServer(root: dir.path)
        let proxy = try CuttingProxy(to: server.port)
        let daemon = try RunningDaemon(directory: dir.path, config: "projects:\n  - name: cut\n    upstream: git://127.0.0.1:\(proxy.port)/upstream.git\n    pollInterval: 1s\n")
        #expect(await daemon.waitFor("cut") { $0.shipyardCommit == first } != nil, "\(daemon.log)")
        let mirror = daemon.state + "/projects/cut/mirror.git"
        var before = stat()
        #expect(stat(mirror, &before) == 0)
        // 2 MiB that do not compress: the pack is cut after 64 KiB, the ref listing is not.
        try Run.checked("/bin/dd", ["if=/dev/urandom", "of=\(upstream.work)/blob.bin", "bs=1M", "count=2", "status=none"])
        try upstream.git("add", "blob.bin")
        proxy.limit = 64 << 10
        let second = try upstream.commit([:], message: "big")
        let failed = await daemon.waitFor("cut") { $0.error != nil }
        #expect(failed?.error?.kind == "upstream", "\(String(describing: failed?.error))")
        #expect(failed?.shipyardCommit == first)
        var after = stat()
        #expect(stat(mirror, &after) == 0 && after.st_ino == before.st_ino, "the mirror was re-created")
        proxy.limit = .max
        #expect(await daemon.waitFor("cut", timeout: .seconds(60)) { $0.commit == second && $0.error == nil } != nil, "\(daemon.log)")
        #expect(!daemon.log.contains("re-created"))
    }

    /// The daemon's fetch children of one kind (`--fetch-child`), by pid.
    static func children(of daemon: pid_t, _ flag: String = "--fetch-child") -> [pid_t] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { pid_t($0) }.filter { pid in
            let cmdline = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))) ?? Data()
            guard String(decoding: cmdline, as: UTF8.self).split(separator: "\0").contains(Substring(flag)) else { return false }
            let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
            return status.split(separator: "\n").contains { $0 == "PPid:\t\(daemon)" } || daemon == 0
        }
    }

    /// A fetch that stalls mid-pack: SIGTERM is honoured at once, not at the 60 s poll timeout,
    /// and the fetch child goes with the daemon; SIGKILL takes the child too (it is not left
    /// writing into the mirror). What the killed fetches left in the mirror (libgit2's temporary
    /// pack, a ref's lock file) is removed by the next fetch, which then succeeds.
    @Test func aStopDuringAFetchIsHonouredAndItsLeftoversGo() async throws {
        let dir = try TemporaryDirectory()
        let upstream = try UpstreamRepository(in: dir.path)
        let first = try upstream.commit(["shipyard.yaml": Self.oneStage])
        let server = try GitDaemonServer(root: dir.path)
        let proxy = try CuttingProxy(to: server.port)
        let config = "projects:\n  - name: stall\n    upstream: git://127.0.0.1:\(proxy.port)/upstream.git\n    pollInterval: 1s\n    pollTimeout: 60s\n"
        var daemon = try RunningDaemon(directory: dir.path, config: config)
        #expect(await daemon.waitFor("stall") { $0.shipyardCommit == first } != nil, "\(daemon.log)")
        // 4 MiB that do not compress: the pack stalls after 256 KiB, the ref listing does not.
        try Run.checked("/bin/dd", ["if=/dev/urandom", "of=\(upstream.work)/blob.bin", "bs=1M", "count=4", "status=none"])
        try upstream.git("add", "blob.bin")
        proxy.limit = 256 << 10
        proxy.stalls = true
        let second = try upstream.commit([:], message: "big")
        let pack = daemon.state + "/projects/stall/mirror.git/objects/pack"
        let temporary = { ((try? FileManager.default.contentsOfDirectory(atPath: pack)) ?? []).filter { $0.hasPrefix("pack_git2_") } }

        for signal in [SIGTERM, SIGKILL] {
            let pid = daemon.pid
            #expect(await eventually(timeout: .seconds(30)) { !Self.children(of: pid).isEmpty && !temporary().isEmpty }, "\(daemon.log)")
            let children = Self.children(of: pid)
            let start = ContinuousClock.now
            daemon.signal(signal)
            #expect(await eventually(timeout: .seconds(20)) { !daemon.isRunning })
            #expect(ContinuousClock.now - start < .seconds(10), "the daemon took \(ContinuousClock.now - start) to stop")
            // The child is gone too (reaped by the daemon, or killed with it and reaped by init).
            #expect(await eventually(timeout: .seconds(10)) {
                children.allSatisfy { kill($0, 0) != 0 || ((try? String(contentsOfFile: "/proc/\($0)/status", encoding: .utf8)) ?? "").contains("State:\tZ") }
            }, "fetch children \(children) outlived the daemon (\(signal))")
            #expect(!temporary().isEmpty, "the killed fetch left no temporary pack to clean up")
            // A lock a killed git process might leave on the branch, too.
            FileManager.default.createFile(atPath: daemon.state + "/projects/stall/mirror.git/refs/heads/main.lock", contents: Data("0\n".utf8))
            if signal == SIGTERM { #expect(daemon.log.contains("stopped"), "\(daemon.log)") }
            daemon = try RunningDaemon(directory: dir.path, config: config)
        }
        proxy.release()
        proxy.limit = .max
        proxy.stalls = false
        #expect(await daemon.waitFor("stall", timeout: .seconds(60)) { $0.commit == second && $0.error == nil } != nil, "\(daemon.log)")
        #expect(temporary().isEmpty, "\(temporary())")
        #expect(!FileManager.default.fileExists(atPath: daemon.state + "/projects/stall/mirror.git/refs/heads/main.lock"))
        await daemon.stop()
    }

    /// A mirror of many packs is repacked by the daemon after a fetch, in a child of its own
    /// (`--repack-child`), never inside the fetch child where the poll's timeout killed it; what
    /// an earlier killed repack left goes first, and every commit stays readable.
    @Test func theDaemonRepacksTheMirrorInAChildOfItsOwn() async throws {
        let dir = try TemporaryDirectory()
        let upstream = try UpstreamRepository(in: dir.path)
        let state = dir.path + "/state"
        let mirror = Mirror(path: state + "/projects/packs/mirror.git")
        try FileManager.default.createDirectory(atPath: state + "/projects/packs", withIntermediateDirectories: true)
        try mirror.prepare()
        var commits: [String] = []
        for i in 0..<40 {
            let commit = try upstream.commit(["shipyard.yaml": Self.oneStage + "# \(i)\n", "f\(i).txt": "\(i)\n"])
            try LocalUpstream.fetch(upstream.bare, branch: "main", tip: ObjectID(hex: commit), into: mirror)
            commits.append(commit)
        }
        #expect(mirror.packCount == 40)
        // What a repack killed half-way leaves: a temporary pack of libgit2's.
        let leftover = mirror.path + "/objects/pack/pack_git2_Xy12Zq"
        #expect(FileManager.default.createFile(atPath: leftover, contents: Data(count: 1 << 20)))
        let last = try upstream.commit(["README": "new\n"])
        let daemon = try RunningDaemon(directory: dir.path, config: "projects:\n  - name: packs\n    upstream: \(upstream.fileURL)\n    pollInterval: 1s\n")
        #expect(await daemon.waitFor("packs") { $0.commit == last } != nil, "\(daemon.log)")
        #expect(await eventually { daemon.log.contains("the mirror's 41 packs were merged into one") }, "\(daemon.log)")
        #expect(mirror.packCount == 1)
        #expect(!FileManager.default.fileExists(atPath: leftover))
        for commit in commits + [last] {
            guard case .blob = try Mirror(path: mirror.path).file(at: ObjectID(hex: commit), path: "shipyard.yaml") else {
                Issue.record("\(commit) lost its shipyard.yaml")
                continue
            }
        }
        await daemon.stop()
    }

    /// A fetch cut on the way leaves the mirror as it was: not deleted, not re-created.
    @Test func aFailedFetchKeepsTheMirror() async throws {
        let dir = try TemporaryDirectory()
        let upstream = try UpstreamRepository(in: dir.path)
        let first = try upstream.commit(["shipyard.yaml": Self.oneStage])
        let daemon = try RunningDaemon(directory: dir.path, config: "projects:\n  - name: keep\n    upstream: \(upstream.fileURL)\n    pollInterval: 1s\n")
        #expect(await daemon.waitFor("keep") { $0.shipyardCommit == first } != nil)
        let mirror = daemon.state + "/projects/keep/mirror.git"
        var before = stat()
        #expect(stat(mirror, &before) == 0)
        // One of the next commit's objects is missing upstream: the fetch fails half-way.
        let second = try upstream.commit(["shipyard.yaml": Self.oneStage + "\n", "blob.txt": "x\n"])
        let blob = try Run.checked("/usr/bin/git", ["-C", upstream.bare, "rev-parse", "main:blob.txt"]).trimmingCharacters(in: .whitespacesAndNewlines)
        let object = upstream.bare + "/objects/\(blob.prefix(2))/\(blob.dropFirst(2))"
        #expect(rename(object, object + ".aside") == 0, "the pushed object is not loose: \(object)")
        let failed = await daemon.waitFor("keep") { $0.error != nil }
        #expect(rename(object + ".aside", object) == 0)
        #expect(failed?.error != nil, "\(daemon.log)")
        var after = stat()
        #expect(stat(mirror, &after) == 0 && after.st_ino == before.st_ino, "the mirror was re-created")
        #expect(!daemon.log.contains("re-created"), "\(daemon.log)")
        #expect(await daemon.waitFor("keep") { $0.shipyardCommit == second } != nil)
    }
}

/// A full disk under the state directory: new work is refused with the reason, the record keeps
/// no torn line, a running task's result waits, and everything carries on once space is back,
/// without a restart.
@Suite(.serialized, .enabled(if: getuid() == 0, "needs root to mount a small tmpfs"))
struct DiskFullTests {
    @Test func theDaemonRecoversFromAFullDiskWithoutARestart() async throws {
        let dir = try TemporaryDirectory()
        let state = dir.path + "/state"
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        try Run.checked("/bin/mount", ["-t", "tmpfs", "-o", "size=8m,mode=0750", "tmpfs", state])
        defer { _ = try? Run.capture("/bin/umount", ["-l", state]) }
        let upstream = try UpstreamRepository(in: dir.path)
        let commit = try upstream.commit(["shipyard.yaml": EngineReviewTests.oneStage])
        // The task writes its result (12 KiB of data, so that recording it needs new pages of
        // the full tmpfs) before it says it started, then waits for the test's go.
        let payload = String(repeating: "x", count: 12_000)
        let task = try dir.write("deploy", """
            #!/bin/sh
            printf '{"result":"pass","data":{"blob":"\(payload)"}}' > "$SHIPYARD_RESULT"
            echo "$SHIPYARD_CONTEXT" >> \(dir.path)/started
            # Ends only once the test has filled the disk (or after a minute), whatever the load.
            for i in $(seq 600); do [ -e \(dir.path)/go ] && break; sleep 0.1; done

            """, mode: 0o755)
        let daemon = try RunningDaemon(directory: dir.path, config: RunningDaemon.oneTask(project: "disk", upstream: upstream.fileURL, program: task))
        #expect(await daemon.waitFor("disk") { $0.shipyardCommit == commit } != nil)
        func trigger() throws -> ProcessOutput {
            try daemon.ctl(["trigger", "delivery", "--project", "disk", "--service", "svc", "--output", "json", "--timeout", "3"])
        }
        func finished(_ context: String) -> Bool {
            let rows = (try? daemon.ctl(["sequences", "--output", "json"]).stdout).flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) } as? [[String: Any]]
            return (rows ?? []).contains { $0["context"] as? String == context && $0["state"] as? String == "finished" && $0["result"] as? String == "pass" }
        }
        let pid = daemon.pid

        // A delivery is running when the disk fills up.
        let running = try #require(String(try trigger().stdout.split(separator: "\"")[3]))
        #expect(await eventually { ((try? String(contentsOfFile: dir.path + "/started", encoding: .utf8)) ?? "").contains(running) })
        _ = try Run.capture("/bin/dd", ["if=/dev/zero", "of=\(state)/filler", "bs=64k"])
        let refused = try trigger()
        #expect(refused.status == 1)
        try writeFile(dir.path + "/go", Data())
        #expect(await eventually { daemon.log.contains("cannot write the record") }, "\(daemon.log)")

        // Space is back: the running delivery's result is recorded, new work is taken.
        unlink(state + "/filler")
        #expect(await eventually(timeout: .seconds(30)) { finished(running) }, "\(daemon.log)")
        let after = try trigger()
        #expect(after.status == 0, "\(after.stderr)")
        let context = try #require(String(after.stdout.split(separator: "\"")[3]))
        #expect(await eventually(timeout: .seconds(30)) { finished(context) })
        #expect(daemon.pid == pid && daemon.isRunning)
        #expect(daemon.log.contains("the record can be written again"))
        // The record has nothing the refused trigger did.
        let journal = try daemon.ctl(["events"]).stdout
        let contexts = Set(journal.split(separator: "\n").compactMap { line -> String? in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["shkeptncontext"] as? String
        })
        #expect(contexts == [running, context])
    }
}
