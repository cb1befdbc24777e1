#ifndef GATEHOUSE_CTESTSUPPORT_H
#define GATEHOUSE_CTESTSUPPORT_H

/* Moves the calling thread into the network namespace open at `fd` (setns(2) with CLONE_NEWNET).
 * Glibc's setns needs _GNU_SOURCE, which Swift's Glibc module is not built with. */
int gatehouse_setns_net(int fd);

#endif
