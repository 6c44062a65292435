import ShipyardCore

/// The host's accounts for the approval rules (ShipyardCore's `ApprovalRules`): read from the
/// passwd and group databases each time a gate is counted.
extension AccountDirectory {
    static let host = AccountDirectory(lookup: { Accounts.lookup(uid: $0) }, groups: { Caller.groupNames(user: $0) })
}
