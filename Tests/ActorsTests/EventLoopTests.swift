import Actors
import Addresses
import Foundation
import Testing

@Suite struct EventLoopTests {
    @Test func reportsReadableSocketsAndTimesOut() throws {
        let loop = try EventLoop()
        let a = try UDPSocket(bindTo: "127.0.0.1")
        let b = try UDPSocket(bindTo: "127.0.0.1")
        try loop.add(a.fileDescriptor)
        try loop.add(b.fileDescriptor)
        #expect(try loop.wait(timeout: .milliseconds(20)).isEmpty, "nothing to read: the wait times out")
        try a.send([1], to: b.localAddress)
        let ready = try loop.wait(timeout: .seconds(2))
        #expect(Array(ready) == [b.fileDescriptor])
        loop.remove(b.fileDescriptor)
        #expect(try loop.wait(timeout: .milliseconds(20)).isEmpty, "a removed socket is not reported")
    }

    @Test func wakeReturnsFromAnotherThread() throws {
        let loop = try EventLoop()
        let start = ContinuousClock.now
        let thread = Thread { usleep(50_000); loop.wake() }
        thread.start()
        let ready = try loop.wait(timeout: .seconds(10))
        #expect(ready.isEmpty)
        #expect(ContinuousClock.now - start < .seconds(5), "woken, not timed out")
    }
}
