import Foundation
import Hummingbird
import HTTPTypes
import NIOCore
import ShipyardCore
import ShipyardDaemon
import ShipyardGit
import ShipyardStore

/// Keptn's resource-service, read-only: a file of the project's repository at a commit, the
/// way job-executor-service asks for `job/config.yaml`. One branch holds every stage here, laid
/// out as the SLO files are: a project's resource is `URI`, a stage's `STAGE/URI`, a service's
/// `STAGE/SERVICE/URI` (Keptn keeps a branch per stage; its directory layout is the same idea).
/// Only regular files of at most 1 MiB are served; a symbolic link or a submodule is not
/// followed, and a path with `..` never leaves the tree (Git's tree is read, not a checkout).
extension Site {
    struct KeptnResource: Encodable {
        var resourceURI: String
        var resourceContent: String?
        var metadata: [String: String]
    }

    static let maxResourceBytes = 1 << 20

    func resourceRoutes(_ router: Router<WebContext>) {
        let base = "/api/resource-service/v1/project/:project"
        for (scope, path) in [(0, base), (1, base + "/stage/:stage"), (2, base + "/stage/:stage/service/:service")] {
            router.get(RouterPath(path + "/resource")) { request, context in
                await self.keptn(request, context) { _ throws(KeptnRefusal) in
                    try self.resourceList(scope: scope, context: context, query: request.uri.queryParameters)
                }
            }
            router.get(RouterPath(path + "/resource/**")) { request, context in
                await self.keptn(request, context) { _ throws(KeptnRefusal) in
                    try self.resource(scope: scope, context: context, query: request.uri.queryParameters)
                }
            }
        }
    }

    /// The folder of a scope in the repository ("" for the project) and the commit to read.
    func resourceFolder(scope: Int, context: WebContext, query: Hummingbird.Parameters) throws(KeptnRefusal) -> (folder: String, commit: ObjectID, mirror: Mirror, upstream: String) {
        let name = context.parameters.get("project") ?? ""
        guard let project = status()?.projects.first(where: { $0.name == name }) else {
            throw KeptnRefusal(.notFound, "Project not found: \(Untrusted.printable(name, limit: 100))")
        }
        var folder = ""
        if scope >= 1 {
            let stage = context.parameters.get("stage") ?? ""
            guard project.stages.contains(stage) else { throw KeptnRefusal(.notFound, "Stage not found: \(Untrusted.printable(stage, limit: 100))") }
            folder = stage
        }
        if scope == 2 {
            let service = Self.unescaped(context.parameters.get("service") ?? "")
            guard APITokens.isName(service) else { throw KeptnRefusal(.notFound, "Service not found: \(Untrusted.printable(service, limit: 100))") }
            folder += "/" + service
        }
        // Keptn's clients send gitCommitID empty, or as the two characters "" when they have none.
        let given = query.get("gitCommitID").map({ String($0) }).flatMap { $0.isEmpty || $0 == "\"\"" ? nil : $0 }
        let commit: ObjectID
        if let given {
            guard given.count == 40, given.allSatisfy(\.isHexDigit) else {
                throw KeptnRefusal(.badRequest, "gitCommitID must be a commit's 40 hex digits")
            }
            commit = ObjectID(hex: given.lowercased())
        } else {
            guard let newest = project.commit.map({ ObjectID(hex: $0) }) else {
                throw KeptnRefusal(.notFound, "Resource not found: \(name) has no commit yet (its upstream was never fetched)")
            }
            commit = newest
        }
        return (folder, commit, Mirror(path: state.mirror(project: name)), Self.withoutCredentials(project.upstream))
    }

    /// `GET …/resource/URI`: the URI arrives escaped once or twice (`job%252Fconfig.yaml` through
    /// Keptn's gateway); it is unescaped until it stops changing, then must be a plain relative path.
    func resource(scope: Int, context: WebContext, query: Hummingbird.Parameters) throws(KeptnRefusal) -> Response {
        let raw = context.parameters.getCatchAll().joined(separator: "/")
        let uri = Self.unescaped(raw).trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        let parts = uri.split(separator: "/", omittingEmptySubsequences: false)
        guard !uri.isEmpty, uri.utf8.count <= 1024, !parts.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }), !uri.contains("\0"), !uri.contains("\\") else {
            throw KeptnRefusal(.badRequest, "\(Untrusted.printable(uri, limit: 200)) is not a resource path (a/b/c.yaml: no empty, . or .. parts)")
        }
        let (folder, commit, mirror, upstream) = try resourceFolder(scope: scope, context: context, query: query)
        let path = folder.isEmpty ? uri : folder + "/" + uri
        let file: Mirror.File
        do {
            file = try mirror.file(at: commit, path: path, limit: Self.maxResourceBytes)
        } catch {
            throw KeptnRefusal(.notFound, "Resource not found: \(error)")
        }
        switch file {
        case .blob(_, let bytes):
            return json(KeptnResource(
                resourceURI: raw, resourceContent: Data(bytes).base64EncodedString(), metadata: ["upstreamURL": upstream, "version": String(describing: commit)]))
        case .missing:
            // A folder on the way that is a link or a submodule hides the file from Git's tree: say so.
            var prefix = ""
            for component in path.split(separator: "/").dropLast() {
                prefix += (prefix.isEmpty ? "" : "/") + component
                if case .notAFile(let kind)? = try? mirror.file(at: commit, path: prefix, limit: 0), kind != "a directory" {
                    throw KeptnRefusal(.notFound, "Resource not found: \(Untrusted.printable(path, limit: 200)) at commit \(commit.short) is under \(Untrusted.printable(prefix, limit: 200)), which is \(kind); only regular files and folders are read")
                }
            }
            throw KeptnRefusal(.notFound, "Resource not found: \(Untrusted.printable(path, limit: 200)) at commit \(commit.short)")
        case .notAFile(let kind):
            throw KeptnRefusal(.notFound, "Resource not found: \(Untrusted.printable(path, limit: 200)) at commit \(commit.short) is \(kind); only regular files are served")
        case .tooLarge(let size):
            throw KeptnRefusal(.contentTooLarge, "\(Untrusted.printable(path, limit: 200)) at commit \(commit.short) is \(size) bytes; at most \(Self.maxResourceBytes) are served")
        }
    }

    /// `GET …/resource`: every regular file under the scope's folder (at most 1,000), as
    /// `/relative/path`.
    func resourceList(scope: Int, context: WebContext, query: Hummingbird.Parameters) throws(KeptnRefusal) -> Response {
        let (folder, commit, mirror, upstream) = try resourceFolder(scope: scope, context: context, query: query)
        var found: [KeptnResource] = []
        var pending = [""]
        var folders = 0
        while let relative = pending.popLast(), found.count < 1000, folders < 1000 {
            folders += 1
            let path = [folder, relative].filter { !$0.isEmpty }.joined(separator: "/")
            guard let entries = try? mirror.entries(at: commit, path: path) else {
                if relative.isEmpty { throw KeptnRefusal(.notFound, "Resource not found: no folder \(Untrusted.printable(path, limit: 200)) at commit \(commit.short)") }
                continue
            }
            for entry in entries {
                let name = relative.isEmpty ? entry.name : relative + "/" + entry.name
                switch entry.kind {
                case .folder: pending.append(name)
                case .file: found.append(KeptnResource(resourceURI: "/" + name, metadata: ["upstreamURL": upstream, "version": String(describing: commit)]))
                case .other: continue
                }
            }
        }
        found.sort { $0.resourceURI < $1.resourceURI }
        return json(KeptnPage(items: Array(found.prefix(1000)), key: "resources", totalCount: found.count))
    }

    /// A path parameter as it was meant: percent-escapes undone until nothing changes (at most three
    /// rounds: once for Keptn's gateway, once for the resource-service, once for good measure).
    static func unescaped(_ text: String) -> String {
        var current = text
        for _ in 0..<3 {
            guard let next = current.removingPercentEncoding, next != current else { break }
            current = next
        }
        return current
    }
}
