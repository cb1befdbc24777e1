import TestSupport
import Testing
import WireGuard

/// BLAKE2s against RFC 7693 (Appendix B's "abc", Appendix E's self-test over keyed and unkeyed hashes
/// of several lengths) and against Python's hashlib (an implementation nobody here wrote) for random
/// messages, keys and lengths; the WireGuard HMAC and KDF against Python's `hmac` with BLAKE2s.
@Suite struct BLAKE2sTests {
    static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    @Test func theRFCsVectors() {
        #expect(Self.hex(BLAKE2s.hash(Array("abc".utf8))) == "508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982")
        #expect(Self.hex(BLAKE2s.hash([UInt8]())) == "69217a3079908094e11121d042354a7c1f55b6482ca1a51e1b250dfd1ed0eef9")
    }

    /// RFC 7693 Appendix E: the hash of the unkeyed and keyed hashes of inputs of 0, 3, 64, 65, 255
    /// and 1,024 bytes at digest lengths 16, 20, 28 and 32.
    @Test func theRFCsSelfTest() {
        func sequence(_ length: Int, seed: UInt32) -> [UInt8] {
            var a = 0xDEAD_4BAD &* seed
            var b: UInt32 = 1
            return (0..<length).map { _ in
                let t = a &+ b
                a = b
                b = t
                return UInt8(t >> 24)
            }
        }
        var grand = BLAKE2s()
        for outputLength in [16, 20, 28, 32] {
            for inputLength in [0, 3, 64, 65, 255, 1024] {
                let input = sequence(inputLength, seed: UInt32(inputLength))
                grand.update(BLAKE2s.hash(input, outputLength: outputLength))
                grand.update(BLAKE2s.hash(input, outputLength: outputLength, key: sequence(outputLength, seed: UInt32(outputLength))))
            }
        }
        #expect(Self.hex(grand.finalize()) == "6a411f08ce25adcdfb02aba641451cec53c598b24f4fc787fbdc88797f4c1dfe")
    }

    @Test func pieceByPieceEqualsAtOnce() {
        let message = (0..<300).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        for cut in [0, 1, 63, 64, 65, 128, 299, 300] {
            var hasher = BLAKE2s(key: [1, 2, 3])
            hasher.update(message[..<cut])
            hasher.update(message[cut...])
            #expect(hasher.finalize() == BLAKE2s.hash(message, key: [1, 2, 3]), "cut at \(cut)")
        }
    }

    /// Random messages (including block boundaries), keys and lengths, hashed here and by hashlib; and
    /// HMAC and the three-output KDF of WireGuard against `hmac` with `hashlib.blake2s`.
    @Test func agreesWithPythonsHashlib() async throws {
        var cases: [(message: [UInt8], key: [UInt8], length: Int)] = []
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> Int {
            seed ^= seed << 13
            seed ^= seed >> 7
            seed ^= seed << 17
            return Int(seed % 1_000_003)
        }
        for index in 0..<40 {
            let length = [0, 1, 63, 64, 65, 127, 128, 129, 1000][index % 9] + (index >= 9 ? next() % 200 : 0)
            let message = (0..<length).map { _ in UInt8(next() % 256) }
            let key = (0..<(index % 3 == 0 ? 0 : 1 + next() % 32)).map { _ in UInt8(next() % 256) }
            cases.append((message, key, 1 + next() % 32))
        }
        let script = """
            import hashlib, hmac, sys
            for line in sys.stdin:
                message, key, length = line.split()
                message = bytes.fromhex(message if message != "-" else "")
                key = bytes.fromhex(key if key != "-" else "")
                digest = hashlib.blake2s(message, key=key, digest_size=int(length)).hexdigest()
                secret = hmac.new(key, message, hashlib.blake2s).digest()
                t1 = hmac.new(secret, b"\\x01", hashlib.blake2s).digest()
                t2 = hmac.new(secret, t1 + b"\\x02", hashlib.blake2s).digest()
                t3 = hmac.new(secret, t2 + b"\\x03", hashlib.blake2s).digest()
                print(digest, hmac.new(key, message, hashlib.blake2s).hexdigest(), t1.hex(), t2.hex(), t3.hex())
            """
        let input = cases.map { "\($0.message.isEmpty ? "-" : Self.hex($0.message)) \($0.key.isEmpty ? "-" : Self.hex($0.key)) \($0.length)" }
            .joined(separator: "\n") + "\n"
        let output = try await Command.run(["sh", "-c", "printf '%s' \"$CASES\" | \(Binaries.python) -c \"$SCRIPT\""],
                                           environment: ["CASES": input, "SCRIPT": script, "PATH": "/usr/bin:/bin"]).standardOutput
        let lines = output.split(separator: "\n")
        try #require(lines.count == cases.count, "\(output)")
        for (line, testCase) in zip(lines, cases) {
            let fields = line.split(separator: " ").map(String.init)
            #expect(fields[0] == Self.hex(BLAKE2s.hash(testCase.message, outputLength: testCase.length, key: testCase.key)),
                    "BLAKE2s-\(testCase.length * 8) of \(testCase.message.count) bytes, key of \(testCase.key.count)")
            #expect(fields[1] == Self.hex(WireGuardHash.hmac(key: testCase.key, testCase.message)), "HMAC")
            #expect(Array(fields[2...4]) == WireGuardHash.kdf(3, key: testCase.key, testCase.message).map(Self.hex), "KDF3")
        }
    }
}
