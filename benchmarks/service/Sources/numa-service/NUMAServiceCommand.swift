import ArgumentParser
import Dispatch
import Foundation
import Logging
import NIOCore
import NIOPosix
import NUMA
import NUMAService
import Synchronization

extension ServiceConfiguration.Allocator: ExpressibleByArgument {}
extension ServiceConfiguration.Policy: ExpressibleByArgument {}
extension ServiceConfiguration.Handlers: ExpressibleByArgument {}

@main
struct NUMAServiceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "numa-service",
        abstract: "The reference study's HTTP service on NUMA pools: request contexts from an ObjectPool, buffers from a NUMAHeap.",
        discussion: """
        Endpoints: GET /hello, POST /echo, GET /work?bytes=N[&wait=MS], GET /metrics (Prometheus), \
        GET /health, GET /stats. SIGTERM or SIGINT stops it gracefully: the requests in flight are \
        answered, then it exits 0.
        """
    )

    @Option(help: "The address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "The port to listen on; 0 takes a free one (printed).")
    var port = 8080

    @Option(help: "Where request contexts and buffers come from: \(ServiceConfiguration.Allocator.allCases.map(\.rawValue).joined(separator: ", ")).")
    var allocator: ServiceConfiguration.Allocator = .local

    @Option(help: "What sizes the contexts' idle capacity: none, slo (the study's rule), demand.")
    var policy: ServiceConfiguration.Policy = .none

    @Option(help: "The p99 request duration the controllers aim for, in milliseconds.")
    var slo = 50

    @Option(help: "The controllers' window, in seconds.")
    var window = 10

    @Option(help: "The least seconds between two steps of a controller.")
    var cooldown = 300

    @Option(help: "The largest /work reply and request body, in bytes.")
    var limit = 1 << 20

    @Option(help: "The CPUs that get an event loop, one each (a list such as 0,2-3); by default every allowed CPU, the nodes in turn.")
    var cpus: String?

    @Option(help: "Where handlers run: concurrency (Swift's pool) or event-loops (NIO's loops as the global executor).")
    var handlers: ServiceConfiguration.Handlers = .concurrency

    @Option(help: "Seconds that free heap memory stays before it goes back to the kernel.")
    var decay = 10

    @Flag(help: "Run the heap without its purger thread (decay then happens only as the heap is called).")
    var noPurger = false

    @Option(help: "Count the placement of one request in this many; 0 counts none.")
    var placementSample = 16

    @Option(help: "Seconds between exports of the pools' statistics to /metrics.")
    var metricsInterval = 1

    func makeConfiguration() throws -> ServiceConfiguration {
        var configuration = ServiceConfiguration()
        configuration.host = host
        configuration.port = port
        configuration.allocator = allocator
        configuration.policy = policy
        configuration.slo = .milliseconds(slo)
        configuration.window = .seconds(window)
        configuration.cooldown = .seconds(cooldown)
        configuration.limit = limit
        if let cpus {
            do {
                configuration.cpus = try CPUSet(parsing: cpus).ids
            } catch {
                throw ValidationError("--cpus: \(error)")
            }
        }
        configuration.handlers = handlers
        configuration.decay = .seconds(decay)
        configuration.placementSample = placementSample
        configuration.metricsInterval = .seconds(metricsInterval)
        configuration.purger = !noPurger
        do {
            try configuration.validate()
            _ = try configuration.loopCPUs()
        } catch {
            throw ValidationError("\(error)")
        }
        return configuration
    }

    func run() throws {
        let configuration = try makeConfiguration()
        if configuration.handlers == .eventLoops {
            // Before any task runs: NIO's singleton loops become Swift's global executor.
            NIOSingletons.groupLoopCountSuggestion = try configuration.loopCPUs().count
            guard NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor() else {
                throw ValidationError("cannot make the event loops Swift's global executor")
            }
        }
        var logger = Logger(label: "numa-service")
        logger.logLevel = ProcessInfo.processInfo.environment["LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
        let outcome = Mutex<Result<NUMAServer.Summary, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task { [logger] in
            let result: Result<NUMAServer.Summary, any Error>
            do {
                result = .success(try await NUMAServer.run(configuration, logger: logger) { port in
                    FileHandle.standardOutput.write(Data("numa-service: listening on port \(port)\n".utf8))
                })
            } catch {
                result = .failure(error)
            }
            outcome.withLock { $0 = result }
            done.signal()
        }
        done.wait()
        switch outcome.withLock({ $0 })! {
        case .success(let summary):
            FileHandle.standardError.write(Data("numa-service: stopped; \(summary.answered) of \(summary.begun) replies begun were answered\n".utf8))
        case .failure(let error):
            FileHandle.standardError.write(Data("numa-service: error: \(error)\n".utf8))
            throw ExitCode.failure
        }
    }
}
