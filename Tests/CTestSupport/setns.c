#define _GNU_SOURCE
#include <sched.h>
#include "CTestSupport.h"

int gatehouse_setns_net(int fd) { return setns(fd, CLONE_NEWNET); }
