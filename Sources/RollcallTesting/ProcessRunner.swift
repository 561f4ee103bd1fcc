import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Runs a command to completion and returns its status, standard output and standard error.
///
/// The output goes to temporary files, not pipes, and the child is spawned and reaped with
/// `posix_spawnp`/`waitpid`: tests start long-lived servers concurrently, and a server spawned
/// while a pipe is open inherits the pipe's write end, so a reader waiting for the pipe's end
/// would wait as long as that server lives.
public func runSynchronously(_ arguments: [String], environment: [String: String]? = nil) throws -> (status: Int32, output: String, errors: String) {
    let directory = FileManager.default.temporaryDirectory
    let outPath = directory.appendingPathComponent("rollcall-run-\(UUID().uuidString).out").path
    let errPath = directory.appendingPathComponent("rollcall-run-\(UUID().uuidString).err").path
    defer {
        unlink(outPath)
        unlink(errPath)
    }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    let argv = arguments.map { strdup($0) } + [nil]
    let environment = environment ?? ProcessInfo.processInfo.environment
    let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer {
        argv.forEach { free($0) }
        envp.forEach { free($0) }
    }
    var pid = pid_t()
    let spawned = posix_spawnp(&pid, arguments[0], &actions, nil, argv, envp)
    guard spawned == 0 else {
        throw CocoaError(.fileNoSuchFile, userInfo: [NSLocalizedDescriptionKey: "cannot run \(arguments[0]): \(String(cString: strerror(spawned)))"])
    }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
    // WIFEXITED / WEXITSTATUS, spelled out (the macros do not import).
    let exitStatus: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    let output = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
    let errors = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
    return (exitStatus, output, errors)
}

/// Runs a command to completion without blocking a Swift concurrency thread: the server under
/// test needs those threads to answer the command. Standard error is appended to the output.
public func runProcess(_ arguments: [String], environment: [String: String]? = nil) async throws -> (status: Int32, output: String) {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            do {
                let result = try runSynchronously(arguments, environment: environment)
                continuation.resume(returning: (result.status, result.output + result.errors))
            } catch {
                continuation.resume(throwing: error)
            }
        }
    }
}
