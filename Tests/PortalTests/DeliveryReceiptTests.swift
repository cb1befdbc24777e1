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
        let start = ContinuousClock.now
        await receipt.wait(atMost: .seconds(60))
        #expect(ContinuousClock.now - start < .seconds(30), "settled: the wait returns at once")
    }

    @Test func aWaiterIsResumedWhenTheLastBatchIsDone() async {
        let receipt = DeliveryReceipt(subscribers: 1)
        receipt.expect()
        receipt.sealed()
        let start = ContinuousClock.now
        async let waited: Void = receipt.wait(atMost: .seconds(60))
        receipt.done()
        await waited
        // Only the bound (a minute) would have ended the wait had the last batch not resumed it.
        #expect(ContinuousClock.now - start < .seconds(30))
        #expect(receipt.isSettled)
    }

    @Test func aWaitGivesUpAtItsBound() async {
        let receipt = DeliveryReceipt(subscribers: 1)
        receipt.expect()  // never done, never sealed: a connection that went away mid-batch
        await receipt.wait(atMost: .milliseconds(50))
        #expect(receipt.isSettled, "the bound settles it")
    }
}
