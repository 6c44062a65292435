import Foundation
import ShipyardTestKit
import Testing

@testable import ShipyardGit

/// libgit2 against real repositories and real servers on loopback.
@Suite(.serialized) struct RemoteTests {
    let shipyard = "apiVersion: spec.keptn.sh/0.2.2\nkind: Shipyard\nspec:\n  stages:\n    - name: qa\n"

    @Test func listsTheBranchTipOverFileAndGitProtocols() throws {
        let dir = try TemporaryDirectory()
        let upstream = try UpstreamRepository(in: dir.path)
        let commit = try upstream.commit(["shipyard.yaml": shipyard])
        #expect(try lsRemoteBranch(RemoteAccess(url: upstream.fileURL), branch: "main") == .commit(ObjectID(hex: commit)))

        let server = try GitDaemonServer(root: dir.path)
        let access = RemoteAccess(url: server.url("upstream.git"))
        #expect(try lsRemoteBranch(access, branch: "main") == .commit(ObjectID(hex: commit)))
        #expect(try lsRemoteBranch(access, branch: "release") == .missing(others: ["main"]))
    }

    @Test func anEmptyRepositoryIsNamedAsSuch() throws {
        let dir = try TemporaryDirectory()
        let upstream = try UpstreamRepository(in: dir.path)
        #expect(try lsRemoteBranch(RemoteAccess(url: upstream.fileURL), branch: "main") == .emptyRepository)
    }

    @Test func anUnreachableHostIsAClearError() throws {
        let refusing = try RefusingPort()
        let port = refusing.port
        let error = #expect(throws: GitError.self) {
            try lsRemoteBranch(RemoteAccess(url: "git://127.0.0.1:\(port)/x.git"), branch: "main")
        }
        #expect(error?.message.hasPrefix("cannot reach git://127.0.0.1:\(port)/x.git") == true)
    }

    @Test func fetchesIntoAMirrorAndReadsTheShipyardWithoutACheckout() throws {
        let dir = try TemporaryDirectory()
        let upstream = try UpstreamRepository(in: dir.path)
        let first = try upstream.commit(["shipyard.yaml": shipyard, "deploy/values.yaml": "x: 1\n"])
        let mirror = Mirror(path: dir.path + "/state/mirror.git")
        #expect(try mirror.prepare() == false)
        let access = RemoteAccess(url: upstream.fileURL)
        #expect(try mirror.fetch(access, branch: "main") == ObjectID(hex: first))
        guard case .blob(let blob, let bytes) = try mirror.file(at: ObjectID(hex: first), path: "shipyard.yaml") else {
            Issue.record("shipyard.yaml not read")
            return
        }
        #expect(String(decoding: bytes, as: UTF8.self) == shipyard)
        #expect(try mirror.file(at: ObjectID(hex: first), path: "missing.yaml") == .missing)
        #expect(try mirror.file(at: ObjectID(hex: first), path: "deploy") == .notAFile("a directory"))
        #expect(try mirror.file(at: ObjectID(hex: first), path: "shipyard.yaml", limit: 10) == .tooLarge(shipyard.utf8.count))

        // A commit that does not touch the shipyard keeps its blob id.
        let second = try upstream.commit(["deploy/values.yaml": "x: 2\n"])
        #expect(try mirror.fetch(access, branch: "main") == ObjectID(hex: second))
        guard case .blob(let sameBlob, _) = try mirror.file(at: ObjectID(hex: second), path: "shipyard.yaml") else {
            Issue.record("shipyard.yaml not read at the second commit")
            return
        }
        #expect(sameBlob == blob)

        // A force-push moves the mirror's branch backwards and sideways.
        let rewritten = try upstream.forcePush(["shipyard.yaml": shipyard + "    - name: production\n"])
        #expect(try mirror.fetch(access, branch: "main") == ObjectID(hex: rewritten))
        #expect(mirror.tip(branch: "main") == ObjectID(hex: rewritten))
    }

    @Test func symlinksAreNotFollowed() throws {
        let dir = try TemporaryDirectory()
        let upstream = try UpstreamRepository(in: dir.path)
        try upstream.commit(["real.yaml": shipyard], push: false)
        try FileManager.default.createSymbolicLink(atPath: upstream.work + "/shipyard.yaml", withDestinationPath: "real.yaml")
        try upstream.git("add", "shipyard.yaml")
        let commit = try upstream.commit([:])
        let mirror = Mirror(path: dir.path + "/m.git")
        try mirror.prepare()
        _ = try mirror.fetch(RemoteAccess(url: upstream.fileURL), branch: "main")
        #expect(try mirror.file(at: ObjectID(hex: commit), path: "shipyard.yaml") == .notAFile("a symbolic link"))
    }

    @Test func anUnreadableMirrorIsRecreated() throws {
        let dir = try TemporaryDirectory()
        let mirror = Mirror(path: dir.path + "/m.git")
        try mirror.prepare()
        try Data("garbage".utf8).write(to: URL(fileURLWithPath: mirror.path + "/HEAD"))
        try FileManager.default.removeItem(atPath: mirror.path + "/objects")
        #expect(try mirror.prepare() == true)
        #expect(try mirror.prepare() == false)
    }

    @Test func httpBasicAuthWithRightAndWrongPasswords() throws {
        let dir = try TemporaryDirectory()
        let upstream = try UpstreamRepository(in: dir.path)
        let commit = try upstream.commit(["shipyard.yaml": shipyard])
        let passwordFile = try dir.write("password", "s3cret\n")
        let server = try HTTPGitServer(root: dir.path, user: "deploy", passwordFile: passwordFile, scratch: dir.path)
        let url = server.url("upstream.git")

        let good = RemoteAccess(url: url, username: "deploy", password: "s3cret")
        #expect(try lsRemoteBranch(good, branch: "main") == .commit(ObjectID(hex: commit)))
        let mirror = Mirror(path: dir.path + "/m.git")
        try mirror.prepare()
        #expect(try mirror.fetch(good, branch: "main") == ObjectID(hex: commit))

        let wrong = #expect(throws: GitError.self) {
            try lsRemoteBranch(RemoteAccess(url: url, username: "deploy", password: "nope"), branch: "main")
        }
        #expect(wrong?.kind == .authentication)
        #expect(wrong?.message.contains("refused the username and password") == true)

        let none = #expect(throws: GitError.self) { try lsRemoteBranch(RemoteAccess(url: url), branch: "main") }
        #expect(none?.message.contains("set credentials.username and credentials.passwordFile") == true)
    }

    @Test(.enabled(if: SSHServer.isAvailable, "sshd is not installed (make test installs openssh-server)"))
    func sshWithAKeyAndKnownHosts() throws {
        let dir = try TemporaryDirectory()
        let upstream = try UpstreamRepository(in: dir.path)
        let commit = try upstream.commit(["shipyard.yaml": shipyard])
        let server = try SSHServer(scratch: dir.path)
        let url = server.url(upstream.bare)

        let trusted = RemoteAccess(url: url, sshKey: server.clientKey, knownHosts: KnownHosts(text: server.knownHostsLine))
        #expect(try lsRemoteBranch(trusted, branch: "main") == .commit(ObjectID(hex: commit)))
        let mirror = Mirror(path: dir.path + "/m.git")
        try mirror.prepare()
        #expect(try mirror.fetch(trusted, branch: "main") == ObjectID(hex: commit))

        let unknown = #expect(throws: GitError.self) {
            try lsRemoteBranch(RemoteAccess(url: url, sshKey: server.clientKey, knownHosts: KnownHosts(text: "")), branch: "main")
        }
        #expect(unknown?.kind == .certificate)
        #expect(unknown?.message.contains("unknown host key for 127.0.0.1 (SHA256:") == true)
        #expect(unknown?.message.contains("ssh-keyscan -p \(server.port) 127.0.0.1") == true)

        let otherKey = "[127.0.0.1]:\(server.port) ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"
        let changed = #expect(throws: GitError.self) {
            try lsRemoteBranch(RemoteAccess(url: url, sshKey: server.clientKey, knownHosts: KnownHosts(text: otherKey)), branch: "main")
        }
        #expect(changed?.message.contains("has CHANGED") == true)
    }
}
