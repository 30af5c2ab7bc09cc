import Logging

extension Logger {
    /// This logger with `value` under `key` in its metadata: how a service names itself (its
    /// queue, its election) in every line it logs.
    package func with(_ key: String, _ value: String) -> Logger {
        var logger = self
        logger[metadataKey: key] = .string(value)
        return logger
    }
}
