extension ConnectionSettings {
    /// The most bytes of an `application_name` PostgreSQL keeps (`NAMEDATALEN - 1`); the server
    /// cuts longer names.
    public static let applicationNameByteLimit = 63

    /// `<role> <instance>`, cut to ``applicationNameByteLimit`` bytes at a character boundary:
    /// how the library names the sessions it opens, so that `pg_stat_activity` tells both the
    /// kind of session and the instance apart (`postgres-locks web-1/4242/9f3a0c1d`).
    ///
    /// - Parameters:
    ///   - role: what the session is for (`postgres-locks`, `pglocks-leader`, `pglocks-locks`).
    ///   - instance: which instance opened it (``ServiceInstance/defaultID()`` by default).
    public static func applicationName(_ role: String, instance: String) -> String {
        let full = instance.isEmpty ? role : "\(role) \(instance)"
        return truncatedApplicationName(full)
    }

    /// `text` cut to at most ``applicationNameByteLimit`` UTF-8 bytes, never inside a character.
    static func truncatedApplicationName(_ text: String) -> String {
        guard text.utf8.count > applicationNameByteLimit else { return text }
        var result = ""
        var bytes = 0
        for character in text {
            let size = character.utf8.count
            guard bytes + size <= applicationNameByteLimit else { break }
            result.append(character)
            bytes += size
        }
        return result
    }

    /// The `application_name` these settings send: ``applicationName`` when given (in code, as
    /// the URL's `application_name`, or by `PGAPPNAME`), else
    /// `postgres-locks <instance>` with this process's ``ServiceInstance/current`` id
    /// (see ``applicationName(_:instance:)``).
    public var effectiveApplicationName: String {
        applicationName ?? Self.applicationName(Self.defaultApplicationName, instance: ServiceInstance.current)
    }

    /// These settings with `<role> <instance>` as the application name, unless one is given.
    func named(_ role: String, instance: String) -> ConnectionSettings {
        var settings = self
        if settings.applicationName == nil { settings.applicationName = Self.applicationName(role, instance: instance) }
        return settings
    }
}
