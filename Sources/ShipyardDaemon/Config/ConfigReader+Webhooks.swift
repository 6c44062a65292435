import Foundation
import ShipyardCore

/// `webhooks:` at the top (how requests are sent) and in a project (which events call its
/// webhook.yaml, and the secrets its webhooks may name).
extension ConfigReader {
    static let webhookPhases = ["triggered", "started", "finished"]

    mutating func readWebhookSettings(_ node: YAMLNode) -> DaemonConfig.Webhooks {
        var settings = DaemonConfig.Webhooks()
        var fields: [String: YAMLPair] = [:]
        guard schema.mapping(
            node, of: "webhooks (the top-level settings; a project's webhooks: list its subscriptions)",
            allowed: ["timeout", "maxResponseBytes", "followRedirects", "allow", "caFile", "retries", "concurrency"], log: &log, into: &fields)
        else { return settings }
        if let timeout = duration(fields["timeout"], what: "webhooks.timeout", minimum: .seconds(1)) {
            if timeout > .seconds(300) {
                log.error("webhooks.timeout is at most 5m (a task that takes longer is a program's job, or a webhook with sendFinished: false)", at: fields["timeout"]!.value.mark)
            } else {
                settings.timeout = timeout
            }
        }
        if let pair = fields["maxResponseBytes"], !pair.value.isNull {
            if let bytes = Self.wholeNumber(pair.value), (1024...(64 << 20)).contains(bytes) {
                settings.maxResponseBytes = bytes
            } else {
                log.error("webhooks.maxResponseBytes must be a whole number of bytes from 1024 to 67108864 (64 MiB)", at: pair.value.mark)
            }
        }
        if let pair = fields["followRedirects"], !pair.value.isNull {
            if case .bool(let b)? = pair.value.scalar?.resolved { settings.followRedirects = b } else {
                log.error("webhooks.followRedirects must be true or false", at: pair.value.mark)
            }
        }
        if let pair = fields["allow"], !pair.value.isNull, let items = schema.list(pair.value, what: "webhooks.allow", log: &log) {
            for item in items {
                guard let text = schema.string(item, what: "an address range of webhooks.allow", log: &log) else { continue }
                guard let cidr = DaemonConfig.CIDR(text) else {
                    log.error("\"\(text)\" is not an address or range; write 127.0.0.1/32, 10.1.0.0/16 or ::1/128", at: item.mark)
                    continue
                }
                settings.allow.append(cidr)
            }
        }
        if let pair = fields["caFile"], !pair.value.isNull, let path = absolutePath(pair.value, what: "webhooks.caFile") {
            settings.caFile = path
            checkExists(path, what: "webhooks.caFile", need: .read, at: pair.value.mark)
        }
        if let pair = fields["retries"], !pair.value.isNull {
            if let count = Self.wholeNumber(pair.value), (0...10).contains(count) { settings.retries = count } else {
                log.error("webhooks.retries must be a whole number from 0 to 10", at: pair.value.mark)
            }
        }
        if let pair = fields["concurrency"], !pair.value.isNull {
            if let count = Self.wholeNumber(pair.value), (1...256).contains(count) { settings.concurrency = count } else {
                log.error("webhooks.concurrency must be a whole number from 1 to 256", at: pair.value.mark)
            }
        }
        return settings
    }

    /// A project's `webhooks:` list and `secrets:` mapping.
    mutating func readProjectWebhooks(_ fields: [String: YAMLPair], into project: inout DaemonConfig.Project) {
        if let pair = fields["secrets"], !pair.value.isNull {
            if let pairs = pair.value.mapping {
                for entry in pairs {
                    let name = entry.key.scalar?.text ?? ""
                    guard WebhookFile.isSecretName(name) else {
                        log.error("secret name \"\(name)\" must be letters, digits, '.', '_' and '-' (the secretRef.name of webhook.yaml)", at: entry.key.mark)
                        continue
                    }
                    guard let path = absolutePath(entry.value, what: "secrets.\(name)") else { continue }
                    project.secrets[name] = path
                    checkSecretFolder(path, name: name, at: entry.value.mark)
                }
            } else {
                log.error("secrets must be a mapping of secret names to folders (a file per key), not \(pair.value.kindDescription)", at: pair.value.mark)
            }
        }
        guard let pair = fields["webhooks"], !pair.value.isNull, let items = schema.list(pair.value, what: "a project's webhooks", log: &log) else { return }
        var seen: [String: SourceMark] = [:]
        for item in items {
            var keys: [String: YAMLPair] = [:]
            guard schema.mapping(item, of: "a webhook subscription", allowed: ["on", "subscriptionID", "stages", "services"], log: &log, into: &keys) else { continue }
            guard let on = keys["on"], let text = schema.string(on.value, what: "on", log: &log) else {
                if keys["on"] == nil { log.error("a webhook subscription needs on: TASK.PHASE, such as approval.triggered or deployment.finished", at: item.mark) }
                continue
            }
            let parts = text.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 2, EntityName.check(parts[0]) == .valid, Self.webhookPhases.contains(parts[1]) else {
                log.error("on must be TASK.PHASE with PHASE triggered, started or finished (such as approval.triggered), not \"\(text)\"", at: on.value.mark)
                continue
            }
            var subscription = DaemonConfig.WebhookSubscription(task: parts[0], phase: parts[1])
            if let id = keys["subscriptionID"], !id.value.isNull {
                subscription.subscriptionID = SLOFile.scalarText(id.value)
                if (subscription.subscriptionID ?? "").isEmpty || (subscription.subscriptionID?.count ?? 0) > 200 {
                    log.error("subscriptionID must be a string of at most 200 characters", at: id.value.mark)
                    continue
                }
            }
            subscription.stages = names(keys["stages"], what: "stages")
            subscription.services = names(keys["services"], what: "services")
            let key = subscription.identity
            if let first = seen[key] {
                log.error("this subscription repeats the one at line \(first.line); each event would call the webhook twice", at: item.mark)
                continue
            }
            seen[key] = item.mark
            project.webhooks.append(subscription)
        }
    }

    /// A webhook on a task's `.triggered` performs the task; a local program must not run it too.
    mutating func checkWebhookExecutors(_ projects: [DaemonConfig.Project], tasks: [String: DaemonConfig.TaskExecutor], marks: [String: SourceMark]) {
        for project in projects {
            for subscription in project.webhooks where subscription.phase == "triggered" && tasks[subscription.task] != nil {
                log.error(
                    "project \(project.name): a webhook on \(subscription.task).triggered performs the task, and tasks.\(subscription.task) runs it as a local program too; "
                        + "keep one, or subscribe the webhook to \(subscription.task).started or .finished to notify",
                    at: marks[project.name] ?? .start)
            }
        }
    }

    private mutating func names(_ pair: YAMLPair?, what: String) -> [String] {
        guard let pair, !pair.value.isNull, let items = schema.list(pair.value, what: what, log: &log) else { return [] }
        return items.compactMap { item in
            guard let text = schema.string(item, what: "a name in \(what)", log: &log) else { return nil }
            if EntityName.check(text) != .valid { log.error("\"\(text)\" is not a \(what == "stages" ? "stage" : "service") name (\(EntityName.rule))", at: item.mark) }
            return text
        }
    }

    /// A secret's folder: the daemon must read it, and nobody else (the operators' group included).
    mutating func checkSecretFolder(_ path: String, name: String, at mark: SourceMark) {
        guard host != .off else { return }
        let problem = WebhookSecrets.folderProblem(path)
        if let problem {
            let message = "secrets.\(name): \(problem)"
            if host == .errors { log.error(message, at: mark) } else { log.warning(message, at: mark) }
        }
    }
}
