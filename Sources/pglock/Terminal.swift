import Foundation
#if canImport(Glibc)
import Glibc
import PglockHarness
#endif

/// The terminal for `pglock top`: raw keys (so `q` quits without Enter), the alternate screen,
/// and restoring everything on the way out, even after Ctrl-C.
final class Terminal: @unchecked Sendable {
    // Mutated only by `enter()` and `restore()`, which `TopCommand` calls from one task.
    private var original = termios()
    private var active = false

    /// Whether standard input and output are a terminal.
    static var isInteractive: Bool { isatty(STDIN_FILENO) == 1 && isatty(STDOUT_FILENO) == 1 }

    /// The terminal's width in columns (80 if unknown).
    static var columns: Int {
        var size = winsize()
        guard ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 else { return 80 }
        return Int(size.ws_col)
    }

    /// Switches to raw keys (no echo, no line buffering; Ctrl-C still sends SIGINT) and the
    /// alternate screen with the cursor hidden.
    func enter() {
        guard Self.isInteractive, !active else { return }
        tcgetattr(STDIN_FILENO, &original)
        var raw = original
        raw.c_lflag &= ~tcflag_t(ICANON | ECHO)
        withUnsafeMutableBytes(of: &raw.c_cc) { cc in
            cc[Int(VMIN)] = 0
            cc[Int(VTIME)] = 1
        }
        tcsetattr(STDIN_FILENO, TCSANOW, &raw)
        write("\u{1B}[?1049h\u{1B}[?25l")
        active = true
    }

    /// Puts the terminal back as it was.
    func restore() {
        guard active else { return }
        tcsetattr(STDIN_FILENO, TCSANOW, &original)
        write("\u{1B}[?25h\u{1B}[?1049l")
        active = false
    }

    /// Replaces the screen with `text`.
    func draw(_ text: String) {
        write("\u{1B}[H\u{1B}[2J" + text.replacingOccurrences(of: "\n", with: "\r\n"))
    }

    func write(_ text: String) {
        FileHandle.standardOutput.write(Data(text.utf8))
    }

    /// Reads keys on a background thread until `q` (or end of input); yields each key.
    static func keys() -> AsyncStream<UInt8> {
        AsyncStream { continuation in
            let thread = Thread {
                var byte: UInt8 = 0
                while true {
                    let count = read(STDIN_FILENO, &byte, 1)
                    if count == 1 {
                        continuation.yield(byte)
                        if byte == UInt8(ascii: "q") || byte == UInt8(ascii: "Q") { break }
                    } else if count == 0 {
                        continue  // VTIME expired: no key
                    } else if errno != EINTR {
                        break
                    }
                }
                continuation.finish()
            }
            thread.start()
        }
    }
}

extension String {
    /// The text with control characters (escape sequences, tabs, newlines) shown as `\u{…}`,
    /// so that values read from the database cannot move the cursor or fake a column.
    var terminalSafe: String {
        var safe = ""
        for scalar in unicodeScalars {
            if scalar.properties.generalCategory == .control || scalar.properties.generalCategory == .format && scalar.value < 0x2060 {
                safe += "\\u{\(String(scalar.value, radix: 16))}"
            } else {
                safe.unicodeScalars.append(scalar)
            }
        }
        return safe
    }
}
