#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Names this process among the instances of a service, for people and logs (the holder of a
/// leader's term, the owner written into a queue job's lease).
public enum ServiceInstance {
    /// `host/pid/random`: unique enough to tell instances apart, the same shape wherever the
    /// library needs one.
    public static func defaultID() -> String {
        makeID()
    }

    /// This process's instance id, made once (by ``defaultID()``) and then the same for every
    /// caller: what the default `application_name` of the library's sessions carries
    /// (``ConnectionSettings/effectiveApplicationName``).
    public static let current: String = makeID()

    private static func makeID() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        let host = gethostname(&buffer, buffer.count) == 0
            ? String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            : "unknown-host"
        let suffix = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        return "\(host)/\(getpid())/\(suffix)"
    }
}
