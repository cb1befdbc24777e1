// relay-load: the load generator of the relay benchmark (bench/relay.sh).
//
//   relay-load echo --listen ADDRESS:PORT
//       An echo peer: every datagram goes back to where it came from (batched).
//   relay-load load --relay ADDRESS:PORT --secret SECRET --peer ADDRESS:PORT
//                   [--channels N] [--rate PACKETS_PER_SECOND] [--seconds S] [--size BYTES]
//       N TURN clients allocate on the relay (TURN REST API credentials), bind a channel each to the
//       echo peer, then send ChannelData at the given total rate for S seconds with sendmmsg and read
//       the echoes with recvmmsg. Prints one line: sent, received, loss %, latency p50/p99 in µs.
import Actors
import Foundation
import Glibc
import STUN

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("relay-load: \(message)\n".utf8))
    exit(2)
}

func parseAddress(_ text: String) -> SocketAddress {
    guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]) else { fail("bad address \(text)") }
    let host = String(text[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
    guard let address = try? SocketAddress(host, port: port) else { fail("bad address \(text)") }
    return address
}

var options: [String: String] = [:]
let arguments = Array(CommandLine.arguments.dropFirst())
guard let mode = arguments.first else { fail("usage: relay-load echo|load ...") }
var index = 1
while index + 1 < arguments.count {
    options[arguments[index]] = arguments[index + 1]
    index += 2
}

func required(_ option: String) -> String {
    guard let value = options[option] else { fail("\(option) is required") }
    return value
}

func nowNanoseconds() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}

switch mode {
case "echo":
    let listen = parseAddress(required("--listen"))
    guard let socket = try? UDPSocket(bindTo: listen, receiveBufferBytes: 8 << 20) else { fail("cannot bind \(listen)") }
    let incoming = DatagramBatch(capacity: 64, datagramCapacity: 2048)
    let outgoing = DatagramBatch(capacity: 64, datagramCapacity: 2048)
    print("echo listening on \(socket.localAddress)")
    fflush(stdout)
    while true {
        _ = try? socket.waitUntilReadable(timeout: Duration.seconds(1))
        guard let count = try? socket.receive(into: incoming), count > 0 else { continue }
        outgoing.removeAll()
        for slot in 0..<count {
            if let source = incoming.address(slot) { outgoing.append(incoming.payload(slot), to: source) }
        }
        _ = try? socket.send(outgoing)
    }

case "load":
    let relay = parseAddress(required("--relay"))
    let peer = parseAddress(required("--peer"))
    let secret = required("--secret")
    let channels = Int(options["--channels"] ?? "8") ?? 8
    let rate = Double(options["--rate"] ?? "10000") ?? 10_000
    let seconds = Double(options["--seconds"] ?? "3") ?? 3
    let size = max(16, Int(options["--size"] ?? "100") ?? 100)
    let codec = STUNCodec()
    let bindHost: SocketAddress = relay.isIPv6 ? SocketAddress(ip: .v6(0, 0), port: 0) : SocketAddress(ip: .v4(0), port: 0)

    // Allocate and bind one channel per client.
    func exchange(_ bytes: [UInt8], on socket: UDPSocket) -> [UInt8] {
        for _ in 0..<5 {
            _ = try? socket.send(bytes, to: relay)
            // Only a STUN message with our transaction ID; echoes of an earlier run may still arrive.
            let deadline = ContinuousClock.now + .seconds(1)
            while ContinuousClock.now < deadline {
                guard let reply = try? socket.receive(timeout: deadline - ContinuousClock.now) else { break }
                if reply.bytes.count >= 20, reply.bytes[0] & 0xC0 == 0, Array(reply.bytes[8..<20]) == Array(bytes[8..<20]) {
                    return reply.bytes
                }
            }
        }
        fail("no answer from the relay at \(relay)")
    }
    func transaction() -> [UInt8] { (0..<12).map { _ in UInt8.random(in: 0...255) } }
    var sockets: [UDPSocket] = []
    var allocations: [(socket: UDPSocket, credentials: STUNCodec.RequestCredentials)] = []
    for client in 0..<channels {
        let username = RESTCredentials.username(expiry: Int64(Date().timeIntervalSince1970) + 3600, id: "load\(client)")
        let password = RESTCredentials.password(secret: secret, username: username)
        // A new socket may get the port of a client of an earlier run whose allocation still exists on
        // the relay (437, allocation mismatch): then try another port.
        for attempt in 1...5 {
            guard let socket = try? UDPSocket(bindTo: bindHost, receiveBufferBytes: 8 << 20) else { fail("cannot open a client socket") }
            var nonce: String?
            for _ in 0..<3 where nonce == nil {
                nonce = STUNCodec.nonce(in: exchange(codec.encodeRequest(method: .allocate, [.transport(17)], transactionID: transaction()), on: socket))
            }
            guard let nonce else { fail("the relay sent no nonce") }
            let credentials = STUNCodec.RequestCredentials(username: username, realm: options["--realm"] ?? "gatehouse", nonce: nonce, password: password)
            let allocated = exchange(codec.encodeRequest(method: .allocate, [.transport(17)], transactionID: transaction(), credentials: credentials), on: socket)
            guard allocated[0] == 0x01, allocated[1] == 0x03 else {
                if STUNCodec.errorCode(in: allocated) == 437 && attempt < 5 { continue }
                fail("allocate failed: error \(STUNCodec.errorCode(in: allocated).map(String.init) ?? "?")")
            }
            let bound = exchange(codec.encodeRequest(method: .channelBind, [.channel(UInt16(0x4000 + client)), .peer(peer)],
                                                     transactionID: transaction(), credentials: credentials), on: socket)
            guard bound[0] == 0x01, bound[1] == 0x09 else { fail("channel bind failed: error \(STUNCodec.errorCode(in: bound).map(String.init) ?? "?")") }
            sockets.append(socket)
            allocations.append((socket, credentials))
            break
        }
    }

    // Flood: each datagram carries its sequence number and send time, behind the 4-byte header.
    let total = Int(rate * seconds)
    let loop = try EventLoop()
    for socket in sockets { try loop.add(socket.fileDescriptor) }
    let batches = sockets.map { _ in DatagramBatch(capacity: 32, datagramCapacity: size + 4) }
    let incoming = DatagramBatch(capacity: 64, datagramCapacity: 2048)
    var latencies: [UInt64] = []
    latencies.reserveCapacity(total)
    var received = 0
    var sent = 0
    let start = nowNanoseconds()
    let interval = 1e9 / rate
    func drain() {
        guard let ready = try? loop.wait(timeout: .zero) else { return }
        for fd in ready {
            guard let socket = sockets.first(where: { $0.fileDescriptor == fd }) else { continue }
            while let count = try? socket.receive(into: incoming), count > 0 {
                let now = nowNanoseconds()
                for slot in 0..<count {
                    let bytes = incoming.payload(slot)
                    guard bytes.count >= 20 else { continue }
                    let sentAt = bytes.loadUnaligned(fromByteOffset: 12, as: UInt64.self)
                    latencies.append(now &- sentAt)
                    received += 1
                }
            }
        }
    }
    while sent < total {
        let due = min(total, Int(Double(nowNanoseconds() - start) / interval) + 1)
        while sent < due {
            let client = sent % sockets.count
            let sequence = UInt64(sent)
            batches[client].append(to: relay) { buffer in
                buffer[0] = UInt8(0x40)
                buffer[1] = UInt8(client)
                buffer[2] = UInt8(size >> 8)
                buffer[3] = UInt8(size & 0xFF)
                for offset in 4..<(4 + size) { buffer[offset] = 0 }
                buffer.storeBytes(of: sequence, toByteOffset: 4, as: UInt64.self)
                buffer.storeBytes(of: nowNanoseconds(), toByteOffset: 12, as: UInt64.self)
                return 4 + size
            }
            sent += 1
            if batches[client].count == batches[client].capacity {
                _ = try? sockets[client].send(batches[client])
                batches[client].removeAll()
            }
        }
        for (client, batch) in batches.enumerated() where batch.count > 0 {
            _ = try? sockets[client].send(batch)
            batch.removeAll()
        }
        drain()
    }
    let drainUntil = nowNanoseconds() + 1_000_000_000
    while received < sent && nowNanoseconds() < drainUntil {
        _ = try? loop.wait(timeout: .milliseconds(10))
        drain()
    }
    let elapsed = Double(nowNanoseconds() - start) / 1e9
    // Free the allocations (Refresh with lifetime 0), so that the next run starts from an empty relay.
    for (socket, credentials) in allocations {
        _ = exchange(codec.encodeRequest(method: .refresh, [.lifetime(0)], transactionID: transaction(), credentials: credentials), on: socket)
    }
    latencies.sort()
    let p50 = latencies.isEmpty ? 0 : latencies[latencies.count / 2] / 1000
    let p99 = latencies.isEmpty ? 0 : latencies[min(latencies.count - 1, latencies.count * 99 / 100)] / 1000
    let loss = sent == 0 ? 0 : Double(sent - received) / Double(sent) * 100
    print(String(format: "sent=%d received=%d loss=%.3f%% offered_pps=%.0f p50_us=%llu p99_us=%llu seconds=%.2f",
                 sent, received, loss, Double(sent) / elapsed, p50, p99, elapsed))

default:
    fail("unknown mode \(mode): echo or load")
}



