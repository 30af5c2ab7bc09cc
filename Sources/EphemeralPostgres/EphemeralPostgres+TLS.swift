#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

extension EphemeralPostgres.Configuration {
    /// A self-signed certificate for the throwaway server, made by `openssl` when it starts.
    ///
    /// ```swift
    /// let server = try await EphemeralPostgres.start(.init(tls: .selfSigned))
    /// let url = "postgresql://postgres@localhost:\(server.port)/postgres?sslmode=verify-full&sslrootcert=\(server.tlsCertificatePath!)"
    /// ```
    public struct TLS: Sendable, Hashable {
        /// The certificate's subject common name.
        public var commonName: String
        /// Its subject alternative names, in openssl's form (`DNS:localhost`, `IP:127.0.0.1`).
        public var subjectAlternativeNames: [String]
        /// How long it is valid, in days.
        public var validityDays: Int

        /// A certificate with the given names.
        public init(commonName: String = "localhost", subjectAlternativeNames: [String] = ["DNS:localhost", "IP:127.0.0.1"], validityDays: Int = 1) {
            self.commonName = commonName
            self.subjectAlternativeNames = subjectAlternativeNames
            self.validityDays = validityDays
        }

        /// `CN=localhost`, valid for `localhost` and `127.0.0.1`, for one day.
        public static let selfSigned = TLS()

        /// Checks the names (they go to openssl's command line) and the validity.
        func validate() throws {
            let names = [commonName] + subjectAlternativeNames
            guard names.allSatisfy({ name in !name.isEmpty && name.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ",") && $0 != UInt8(ascii: "/") } }),
                  (1...3650).contains(validityDays) else {
                throw EphemeralPostgresError(code: .invalidSetting, message: "TLS names must be printable ASCII without spaces, ',' or '/', and the validity 1 to 3650 days")
            }
        }

        static let certificateFile = "server.crt"
        static let keyFile = "server.key"
    }

    /// How clients connecting over TCP prove who they are.
    public enum HostAuthentication: String, Sendable, Hashable {
        /// No password asked (initdb's `-A trust`).
        case trust
        /// A password, checked with SCRAM-SHA-256 (roles need one: `CREATE ROLE … PASSWORD …`).
        case scramSHA256 = "scram-sha-256"
    }
}

extension EphemeralPostgres {
    /// The server's certificate (PEM), to use as `sslrootcert`; nil without TLS.
    public var tlsCertificatePath: String? {
        configuration.tls == nil ? nil : dataDirectory + "/" + Configuration.TLS.certificateFile
    }

    /// Makes the certificate and key in the data directory, owned by the server's user.
    func prepareTLS() async throws {
        guard let tls = configuration.tls else { return }
        try tls.validate()
        guard let openssl = Self.findProgram("openssl", searchPath: configuration.searchPath) else {
            throw EphemeralPostgresError(code: .tlsSetupFailed, message: "openssl was not found on PATH: install it (`apt-get install openssl`) to start the server with TLS")
        }
        let certificate = dataDirectory + "/" + Configuration.TLS.certificateFile
        let key = dataDirectory + "/" + Configuration.TLS.keyFile
        var arguments = [
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "\(tls.validityDays)",
            "-subj", "/CN=\(tls.commonName)", "-keyout", key, "-out", certificate,
        ]
        if !tls.subjectAlternativeNames.isEmpty {
            arguments += ["-addext", "subjectAltName=" + tls.subjectAlternativeNames.joined(separator: ",")]
        }
        let result = try await run(openssl, arguments)
        guard result.success else {
            throw EphemeralPostgresError(code: .tlsSetupFailed, message: "openssl could not make the certificate (\(result.status)): \(result.errorTail)")
        }
        // The server refuses a key that others can read.
        guard chmod(key, 0o600) == 0 else {
            throw EphemeralPostgresError(code: .tlsSetupFailed, message: "could not restrict \(key) to its owner")
        }
    }

    /// Writes `pg_hba.conf` for password authentication over TCP, if asked for.
    func writeHostAuthentication() throws {
        guard configuration.hostAuthentication != .trust else { return }
        let method = configuration.hostAuthentication.rawValue
        let text = """
            # written by EphemeralPostgres: Unix-socket clients are trusted, TCP clients give a password
            local all all trust
            host all all 127.0.0.1/32 \(method)
            host all all ::1/128 \(method)

            """
        do {
            try Data(text.utf8).write(to: URL(fileURLWithPath: dataDirectory + "/pg_hba.conf"))
        } catch {
            throw EphemeralPostgresError(code: .fileSystem, message: "could not write pg_hba.conf: \(error)")
        }
    }

    static func findProgram(_ name: String, searchPath: [String]) -> String? {
        for folder in searchPath + ["/usr/bin", "/usr/local/bin", "/bin"] where !folder.isEmpty {
            let candidate = folder + "/" + name
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }
}
