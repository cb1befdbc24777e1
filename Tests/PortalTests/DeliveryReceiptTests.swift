import Portal
import Testing

/// A change's row deletions wait for its receipt: settled only once every subscriber sealed it and
/// every batch it expected is done, and a wait never outlasts its bound.
@Suite struct DeliveryReceiptTests {
    @Test func settledOnlyWhenEverySubscriberSealedAndEveryBatchIsDone() async {
        let receipt = DeliveryReceipt(subscribers: 2)
        receipt.expect()
        receipt.expect()
        receipt.done()
        receipt.sealed()
        #expect(!receipt.isSettled, "one batch and one subscriber are still out")
        receipt.done()
        #expect(!receipt.isSettled, "a subscriber has not sealed: it may still send")
        receipt.expect()
        receipt.sealed()
        #expect(!receipt.isSettled, "a batch expected after the first seal is still out")
        receipt.done()
        #expect(receipt.isSettled)
        #expect(await receipt.wait(atMost: .seconds(60)), "settled: the wait ends without its bound")
    }

    @Test func aWaiterIsResumedWhenTheLastBatchIsDone() async {
        let receipt = DeliveryReceipt(subscribers: 1)
        receipt.expect()
        receipt.sealed()
        async let waited = receipt.wait(atMost: .seconds(60))
        receipt.done()
        // Had the last batch not resumed the waiter, only the bound (a minute) would have ended the wait,
        // and the wait says so; elapsed time is not measured (a loaded suite delays any task for seconds).
        #expect(await waited, "resumed by the last batch, not by the bound")
        #expect(receipt.isSettled)
    }

    @Test func aWaitGivesUpAtItsBound() async {
        let receipt = DeliveryReceipt(subscribers: 1)
        receipt.expect()  // never done, never sealed: a connection that went away mid-batch
        #expect(await receipt.wait(atMost: .milliseconds(50)) == false, "the bound ended the wait")
        #expect(receipt.isSettled, "the bound settles it")
    }
}
