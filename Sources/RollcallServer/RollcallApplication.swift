import Foundation
import Hummingbird
import HummingbirdTLS
import NIOSSL
import HummingbirdCore
import Logging
import NIOCore
import RollcallCore
import RollcallStore
import ServiceLifecycle

/// A configured Rollcall server: the Hummingbird application plus the parts tests, the demo and
/// the dashboard look at.
public struct RollcallApplication: Sendable {
    public let application: Application<RouterResponder<BasicRequestContext>>
    public let presence: Presence
    public let hub: TransitionHub
    public let store: any HistoryStore
    public let runID: Int64
    /// Held while the server runs; released once its history is closed.
    public let lock: DatabaseLock?

    public static let version = "0.1.0"

    /// Opens the database, repairs what a previous run left open, and wires the services.
    /// `onServerRunning` receives the bound port (useful with port 0).
    ///
    /// Nothing is written before the database is locked for this server (``DatabaseLock.Held``
    /// names the other one) and the address is known to be free (an `IOError` with the errno),
    /// so a second `rollcall serve` by mistake changes nothing.
    public static func build(
        configuration: ServerConfiguration,
        logger: Logger = Logger(label: "rollcall"),
        clock: any PresenceClock = SystemPresenceClock(),
        onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) throws -> RollcallApplication {
        // An existing file is locked first, so a second server is told which one holds it; a new
        // file is only created once the address is known to be free.
        let lock: DatabaseLock
        if FileManager.default.fileExists(atPath: configuration.databasePath) {
            lock = try DatabaseLock(path: configuration.databasePath)
            try PortProbe.check(host: configuration.host, port: configuration.port)
        } else {
            try PortProbe.check(host: configuration.host, port: configuration.port)
            lock = try DatabaseLock(path: configuration.databasePath)
        }
        lock.describeHolder("pid \(ProcessInfo.processInfo.processIdentifier), listening on \(configuration.host):\(configuration.port)")
        let store = try SQLiteHistoryStore(path: configuration.databasePath)
        return try build(configuration: configuration, store: store, lock: lock, logger: logger, clock: clock, onServerRunning: onServerRunning)
    }

    /// Builds a server whose history is in PostgreSQL (SPEC §10), after checking that the address
    /// is free, so a refused port leaves nothing behind in the database.
    public static func build(
        configuration: ServerConfiguration,
        postgres location: PostgresLocation,
        password: String?,
        nodeID: String,
        logger: Logger = Logger(label: "rollcall"),
        onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) throws -> RollcallApplication {
        try PortProbe.check(host: configuration.host, port: configuration.port)
        let store = try PostgresHistoryStore(location: location, password: password, nodeID: nodeID, leaseMs: configuration.leaseMs, logger: logger)
        return try build(configuration: configuration, store: store, lock: nil, logger: logger, clock: SystemPresenceClock(), onServerRunning: onServerRunning)
    }

    public static func build(
        configuration: ServerConfiguration,
        store: any HistoryStore,
        lock: DatabaseLock? = nil,
        logger: Logger,
        clock: any PresenceClock,
        onServerRunning: @escaping @Sendable (Int) async -> Void
    ) throws -> RollcallApplication {
        let (presence, hub, start) = try startPresence(configuration: configuration, store: store, logger: logger, clock: clock)
        let admission = Admission(presence: presence, hub: hub, configuration: configuration, announcedNewest: { store.announcedTransitionID })
        for agent in start.agents where agent.tokenHash != nil || agent.disabled {
            guard let id = AgentID(agent.id) else { continue }
            admission.setCredential(Credential(tokenHash: agent.tokenHash, disabled: agent.disabled), for: id)
        }

        let router = Router(context: BasicRequestContext.self)
        QueryAPI(presence: presence, hub: hub, store: store, admission: admission, configuration: configuration).register(on: router)

        // Stopped in reverse order: presence first (agents become unknown), then the sweeper,
        // then the writer, whose final flush sees every transition of the shutdown.
        var writer = HistoryWriterService(
            store: store, outbox: presence.outbox, presence: presence, hub: hub, runID: start.runID, configuration: configuration,
            lock: lock, logger: logger)
        writer.onCommand = { command in await Self.carryOut(command, store: store, presence: presence, admission: admission, logger: logger) }
        writer.onCredentials = { rows in
            for row in rows {
                guard let id = AgentID(row.id) else { continue }
                admission.setCredential(Credential(tokenHash: row.tokenHash, disabled: row.disabled), for: id)
            }
        }
        let services: [any Service] = [
            writer,
            LivenessSweeperService(presence: presence, interval: configuration.sweepInterval, pingInterval: configuration.pingInterval),
            PresenceStopService(presence: presence, store: store, grace: configuration.closeGrace),
        ]
        var server = HTTPServerBuilder { responder in
            RollcallChannel(responder: responder, presence: presence, hub: hub, store: store, configuration: configuration, admission: admission)
        }
        if let certificate = configuration.tlsCertificatePath, let key = configuration.tlsKeyPath {
            let tls = TLSConfiguration.makeServerConfiguration(
                certificateChain: try NIOSSLCertificate.fromPEMFile(certificate).map { .certificate($0) },
                privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem)))
            server = try .tls(server, tlsConfiguration: tls)
        }
        let application = Application(
            router: router,
            server: server,
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "rollcall"),
            services: services,
            onServerRunning: { channel in
                await onServerRunning(channel.localAddress?.port ?? configuration.port)
            },
            logger: logger
        )
        return RollcallApplication(application: application, presence: presence, hub: hub, store: store, runID: start.runID, lock: lock)
    }

    /// Records a new run, repairs what the previous one left open, and restores every known
    /// agent into a fresh liveness engine (unknown agents get their warm-up).
    public static func startPresence(
        configuration: ServerConfiguration, store: any HistoryStore, logger: Logger, clock: any PresenceClock
    ) throws -> (Presence, TransitionHub, RunStart) {
        let now = clock.now()
        let start = try store.startRun(now: now, pid: ProcessInfo.processInfo.processIdentifier, version: version)
        if start.recoveredCrash {
            logger.warning(
                "previous run ended without stopping; its agents are unknown until they return",
                metadata: ["agents": "\(start.repairTransitions.count)"])
        }
        var engine = LivenessEngine(
            configuration: configuration.liveness, nextTransitionID: start.nextTransitionID, nextSessionID: start.nextSessionID,
            sessionIDEnd: start.sessionIDs?.upperBound ?? .max)
        let returning = start.agents.filter { $0.state == .unknown && !start.foreignAgents.contains($0.id) }.count
        let readmissionMs = Self.readmissionMs(agents: returning, handshakesPerSecond: configuration.limits.handshakesPerSecond)
        if readmissionMs > 0 {
            logger.info(
                "warm-up: one timeout plus the time to readmit every returning agent at the handshake rate",
                metadata: ["agents": "\(returning)", "readmission_ms": "\(readmissionMs)"])
        }
        for agent in start.agents {
            guard let id = AgentID(agent.id) else { continue }
            engine.restore(
                agent: id, state: agent.state, since: agent.stateSince, lastSeen: agent.lastSeen, timeoutMs: agent.timeoutMs,
                bootID: agent.lastBootID, readmissionMs: readmissionMs, owned: !start.foreignAgents.contains(agent.id), now: now)
        }
        let presence = Presence(
            engine: engine, clock: clock, outbox: Outbox(), handshakesPerSecond: configuration.limits.handshakesPerSecond, logger: logger)
        // The hub starts at the newest committed id, with every agent's committed state.
        let hub = TransitionHub(
            ringCapacity: configuration.transitionRing, lastID: start.nextTransitionID - 1, catchUpPagesPerSecond: configuration.catchUpPagesPerSecond)
        for agent in start.agents {
            guard let id = AgentID(agent.id) else { continue }
            hub.seed(id, state: agent.state, since: agent.stateSince)
        }
        return (presence, hub, start)
    }

    /// An operator's action announced by a node (this one included): every node reloads the
    /// agent's credential; its owner, if any, ends its presence.
    static func carryOut(_ command: NodeCommand, store: any HistoryStore, presence: Presence, admission: Admission, logger: Logger) async {
        let id: AgentID
        switch command {
        case .credentials(let agent), .kick(let agent), .remove(let agent): id = agent
        }
        if case .kick = command {
            presence.end(id, removed: false)
            return
        }
        do {
            let row = try await DatabaseThreads.shared.read { try store.agent(id.rawValue) }
            if let row {
                admission.setCredential(Credential(tokenHash: row.tokenHash, disabled: row.disabled), for: id)
                presence.registered(id, owned: false)
            }
        } catch {
            logger.warning("could not reload an agent's credential", metadata: ["agent": "\(id)", "error": "\(error)"])
        }
        if case .remove = command { presence.end(id, removed: true) }
    }

    /// How long the handshake limit needs to let `agents` back in after a start: their warm-up is
    /// extended by it, so a fleet returning together is not charged for the server's own pacing.
    public static func readmissionMs(agents: Int, handshakesPerSecond: Double) -> Int64 {
        guard agents > 0, handshakesPerSecond > 0, handshakesPerSecond.isFinite else { return 0 }
        return Int64((Double(agents) / handshakesPerSecond * 1000).rounded(.up))
    }
}
