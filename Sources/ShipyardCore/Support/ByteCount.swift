/// Sizes in messages: "64 KiB", "4 MiB", "1.5 MiB", "512 bytes".
public enum ByteCount {
    public static func format(_ bytes: Int) -> String {
        func unit(_ size: Int, _ name: String) -> String {
            let whole = bytes / size
            let tenth = (bytes % size) * 10 / size
            return tenth == 0 ? "\(whole) \(name)" : "\(whole).\(tenth) \(name)"
        }
        if bytes >= 1 << 30 { return unit(1 << 30, "GiB") }
        if bytes >= 1 << 20 { return unit(1 << 20, "MiB") }
        if bytes >= 1 << 10 { return unit(1 << 10, "KiB") }
        return bytes == 1 ? "1 byte" : "\(bytes) bytes"
    }
}
