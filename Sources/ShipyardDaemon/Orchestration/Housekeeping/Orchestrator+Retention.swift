import Foundation
import Logging
import ShipyardCore
import ShipyardGit

/// Housekeeping: deliveries older than `history.keep` leave the record in small batches.
extension Orchestrator {
    /// How often ended deliveries older than `history.keep` are looked for.
    static let retentionInterval: Duration = .seconds(600)
    /// Contexts removed per transaction: small, so that commands go on between batches.
    static let retentionBatch = 50

    /// Removes the deliveries (contexts) whose sequences all ended longer than `history.keep`
    /// ago, with their events and task logs, a small batch at a time; active sequences and
    /// pending approvals are never touched. Then gives freed pages back. Returns how many went.
    @discardableResult
    func retain(now: Date = Date()) async -> Int {
        guard let keep = configuration.historyKeep, !retaining, failed == nil else { return 0 }
        retaining = true
        defer { retaining = false }
        let cutoff = now.addingTimeInterval(-keep.seconds)
        var removed = 0
        while !stopping {
            let contexts: [String]
            do {
                contexts = try store.removeHistory(endedBefore: cutoff, limit: Self.retentionBatch)
            } catch {
                logger.error("history: cannot remove ended deliveries: \(error)")
                break
            }
            for context in contexts where !context.contains("/") && context != ".." && context != "." && !context.isEmpty {
                try? FileManager.default.removeItem(atPath: state.root + "/logs/" + context)
            }
            removed += contexts.count
            if contexts.count < Self.retentionBatch { break }
            // Other commands go first between batches.
            try? await Task.sleep(for: .milliseconds(20))
        }
        if removed > 0 {
            do {
                try store.reclaimSpace(pages: 10_000)
            } catch {
                logger.warning("history: cannot give free pages back: \(error)")
            }
            logger.info("history: removed \(removed) deliveries that ended before \(Timestamps.format(cutoff)) (history.keep \(GoDuration.format(keep)))")
        }
        return removed
    }
}
