import CBPF
import Glibc

/// What one `BPF_PROG_TEST_RUN` of a program returned.
package struct BPFTestRunResult: Sendable {
    /// The program's return value (for TC: `TC_ACT_OK` 0, `TC_ACT_SHOT` 2, ...).
    package var returnValue: UInt32
    /// The packet as the program left it.
    package var output: [UInt8]
    /// The kernel's average run time per repetition, in nanoseconds.
    package var nanoseconds: UInt32
}

extension BPFProgram {
    /// Runs the program in the kernel over `packet` (`BPF_PROG_TEST_RUN`) without attaching it anywhere,
    /// `repetitions` times, with its real maps. For TC programs the kernel expects an Ethernet frame:
    /// it sets the network header after the Ethernet header, as a device would. Needs CAP_BPF (root).
    package func testRun(_ packet: [UInt8], repetitions: Int32 = 1) throws(BPFError) -> BPFTestRunResult {
        var output = [UInt8](repeating: 0, count: packet.count + 256)
        let outputCount = output.count
        let (code, result) = packet.withUnsafeBytes { input in
            output.withUnsafeMutableBytes { out -> (Int32, (UInt32, UInt32, UInt32)) in
                var options = bpf_test_run_opts()
                options.sz = libbpfOptionsSize(bpf_test_run_opts.self, through: \.duration)
                options.data_in = input.baseAddress
                options.data_size_in = UInt32(input.count)
                options.data_out = out.baseAddress
                options.data_size_out = UInt32(outputCount)
                options.repeat = repetitions
                let code = bpf_prog_test_run_opts(fileDescriptor, &options)
                return (code, (options.retval, options.data_size_out, options.duration))
            }
        }
        if code < 0 { throw LibBPFLog.error("test-running BPF program \"\(name)\"", code: -code) }
        return BPFTestRunResult(returnValue: result.0, output: Array(output.prefix(Int(result.1))), nanoseconds: result.2)
    }
}

extension BPFProgram {
    /// The kernel's run statistics of the program: runs and total nanoseconds spent in it. They grow
    /// only while `kernel.bpf_stats_enabled` is 1 (the sysctl costs a little on every run, so it is off
    /// by default).
    package func runStatistics() throws(BPFError) -> (runs: UInt64, nanoseconds: UInt64) {
        var info = bpf_prog_info()
        var length = UInt32(MemoryLayout<bpf_prog_info>.size)
        let code = withUnsafeMutableBytes(of: &info) { bpf_obj_get_info_by_fd(fileDescriptor, $0.baseAddress, &length) }
        if code < 0 { throw LibBPFLog.error("reading the statistics of BPF program \"\(name)\"", code: -code) }
        return (info.run_cnt, info.run_time_ns)
    }
}
