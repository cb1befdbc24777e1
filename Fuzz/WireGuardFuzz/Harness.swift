import Foundation
import FuzzSupport
import WireGuard

/// What one input made the peers do (the replay prints it, so seeds can be seen to reach deep states).
struct Summary {
    var handshakes = 0
    var deliveredAtA = 0
    var deliveredAtB = 0
    var cookies = 0
    /// Datagrams either peer dropped (every reason is a legal outcome of a hostile wire).
    var dropped = 0
}

/// Two peers of ours, A and B, joined by a wire the input controls, and a clock it moves. An input is a
/// little program: each step is an opcode byte and its operands.
///   0: arbitrary bytes into B        1: arbitrary bytes into A
///   2: A sends a packet              3: B sends a packet
///   4: the next datagram on the wire A→B is delivered (operand: flip one byte at an index, or not)
///   5: the same B→A                  6: the last datagram delivered is delivered again (a replay)
///   7: time passes (operand × 4 s)   8: both peers' timers run
///   9: B answers the last initiation it got with a cookie reply (as a responder under load would)
/// After every step the harness checks what must always hold: a packet comes out of a peer only if
/// the other peer was given it to send; a violation traps (a crash libFuzzer reports).
enum Harness {
    static let keyA = StaticKey(privateKey: [UInt8](repeating: 0x11, count: 32))
    static let keyB = StaticKey(privateKey: [UInt8](repeating: 0x22, count: 32))
    static let psk = [UInt8](repeating: 0x33, count: 32)
    static let source = CookieResponder.source(address: [198, 51, 100, 1], port: 51820)

    @discardableResult
    static func run(_ input: [UInt8]) -> Summary {
        var reader = InputReader(input)
        var summary = Summary()
        var now = Date(timeIntervalSince1970: 1_800_000_000)
        let counter = IndexCounter()
        var a = Peer(local: keyA, remoteStatic: keyB.publicKey, presharedKey: psk, newIndex: { counter.next() })
        var b = Peer(local: keyB, remoteStatic: keyA.publicKey, presharedKey: psk, newIndex: { counter.next() })
        let cookies = CookieResponder(local: keyB.publicKey, now: now)
        var towardB: [[UInt8]] = []
        var towardA: [[UInt8]] = []
        var sentByA: Set<[UInt8]> = []
        var sentByB: Set<[UInt8]> = []
        var last: (toB: Bool, datagram: [UInt8])?
        var lastInitiationAtB: [UInt8]?

        func route(_ outputs: [PeerOutput], fromA: Bool) {
            for output in outputs {
                switch output {
                case let .datagram(bytes):
                    if fromA { towardB.append(bytes) } else { towardA.append(bytes) }
                    if bytes.first == 2 { summary.handshakes += 1 }
                case let .packet(bytes):
                    // Out of the tunnel: it must be, padding aside, a packet the other side was given.
                    let sent = fromA ? sentByB : sentByA
                    guard sent.contains(where: { bytes.count >= $0.count && bytes.starts(with: $0) && bytes[$0.count...].allSatisfy { $0 == 0 } })
                    else { fatalError("a packet came out of the tunnel that nobody sent: \(bytes)") }
                    if fromA { summary.deliveredAtA += 1 } else { summary.deliveredAtB += 1 }
                case .dropped:
                    summary.dropped += 1
                }
            }
            // The wire holds a bounded number of datagrams (older ones are lost).
            if towardB.count > 16 { towardB.removeFirst(towardB.count - 16) }
            if towardA.count > 16 { towardA.removeFirst(towardA.count - 16) }
        }

        func deliver(toB: Bool, _ datagram: [UInt8]) {
            if toB {
                if datagram.first == 1 { lastInitiationAtB = datagram }
                route(b.receive(datagram, now: now), fromA: false)
            } else {
                route(a.receive(datagram, now: now), fromA: true)
            }
            last = (toB, datagram)
        }

        var steps = 0
        while !reader.isAtEnd, steps < 256 {
            steps += 1
            switch reader.byte() % 10 {
            case 0: deliver(toB: true, reader.chunk())
            case 1: deliver(toB: false, reader.chunk())
            case 2:
                let packet = [0x45] + reader.chunk()
                sentByA.insert(packet)
                route(a.send(packet, now: now), fromA: true)
            case 3:
                let packet = [0x45] + reader.chunk()
                sentByB.insert(packet)
                route(b.send(packet, now: now), fromA: false)
            case 4, 5:
                let toB = reader.byte() % 2 == 0
                let flip = reader.byte()
                guard !(toB ? towardB : towardA).isEmpty else { continue }
                var datagram = toB ? towardB.removeFirst() : towardA.removeFirst()
                if flip & 0x80 != 0, !datagram.isEmpty { datagram[Int(flip & 0x7F) % datagram.count] ^= 0x01 }
                deliver(toB: toB, datagram)
            case 6:
                if let last { deliver(toB: last.toB, last.datagram) }
            case 7:
                now = now.addingTimeInterval(TimeInterval(reader.byte()) * 4)
            case 8:
                route(a.tick(now: now), fromA: true)
                route(b.tick(now: now), fromA: false)
            default:
                if let initiation = lastInitiationAtB, let reply = cookies.reply(to: initiation, from: source, now: now) {
                    summary.cookies += 1
                    towardA.append(reply)
                }
            }
        }
        return summary
    }
}

/// Session indexes that differ within a run and repeat across runs (reproducible inputs).
final class IndexCounter: @unchecked Sendable {
    private var value: UInt32 = 0
    func next() -> UInt32 {
        value &+= 1
        return value
    }
}
