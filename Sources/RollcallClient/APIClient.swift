import Foundation
import RollcallCore

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A small client for the query and admin API, used by the operator commands.
public struct APIClient: Sendable {
    public let baseURL: String
    public let token: String?
    /// Seconds a request may take.
    public let timeout: Double

    public init(baseURL: String, token: String? = nil, timeout: Double = 10) {
        self.timeout = timeout
        var base = baseURL
        while base.hasSuffix("/") { base.removeLast() }
        self.baseURL = base
        self.token = token
    }

    public struct Failure: Error, CustomStringConvertible {
        public var status: Int?
        public var code: String?
        public var message: String
        public var description: String { message }
    }

    /// Performs a request; a non-2xx answer becomes a ``Failure`` carrying the server's message.
    public func send(_ method: String, _ path: String, body: JSONValue? = nil) async throws -> JSONValue {
        guard let url = URL(string: baseURL + path) else {
            throw Failure(status: nil, code: nil, message: "bad server URL \(baseURL); expected e.g. http://127.0.0.1:7777")
        }
        var request = URLRequest(url: url, timeoutInterval: timeout)
        request.httpMethod = method
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        if let body {
            request.httpBody = Data(body.serialized().utf8)
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        let data: Data
        let response: URLResponse
        do {
            (data, response) = try await URLSession.shared.data(for: request)
        } catch {
            throw Failure(
                status: nil, code: "unreachable",
                message: "no Rollcall server answers at \(baseURL) (\(error.localizedDescription)); "
                    + "start one with `rollcall serve`, or point --server at yours, e.g. --server http://HOST:7777")
        }
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        let json = (try? JSONParser.parse(Array(data))) ?? .null
        guard (200..<300).contains(status) else {
            throw Failure(
                status: status, code: json["error"]?.stringValue,
                message: json["message"]?.stringValue.map { "\(status): \($0)" } ?? "the server answered \(status)")
        }
        return json
    }

    public func get(_ path: String) async throws -> JSONValue { try await send("GET", path) }
}
