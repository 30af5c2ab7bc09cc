/// Whether a host names this machine only: `localhost`, `::1`, or an IPv4 address in
/// 127.0.0.0/8 written as four numbers. A name that merely starts with `127.` is not. Pure.
public enum LoopbackHost {
    /// Whether `host` (no port, IPv6 without brackets) is a loopback host.
    public static func isLoopback(host: String) -> Bool {
        let host = host.lowercased()
        if host == "localhost" || host == "::1" || host == "0:0:0:0:0:0:0:1" { return true }
        let octets = host.split(separator: ".", omittingEmptySubsequences: false)
        guard octets.count == 4 else { return false }
        let numbers = octets.compactMap { $0.count <= 3 && $0.allSatisfy(\.isASCII) ? UInt8($0) : nil }
        return numbers.count == 4 && numbers[0] == 127
    }

    /// Whether an HTTP authority (`host`, `host:port`, `[v6]:port`) names a loopback host.
    public static func isLoopback(authority: String) -> Bool {
        var host = Substring(authority)
        if host.hasPrefix("[") {
            guard let end = host.firstIndex(of: "]") else { return false }
            host = host[host.index(after: host.startIndex)..<end]
        } else if let colon = host.lastIndex(of: ":") {
            host = host[..<colon]
        }
        return isLoopback(host: String(host))
    }
}
