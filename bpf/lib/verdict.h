/* Verdicts shared by podnet's tc programs. */
#pragma once
#include <linux/pkt_cls.h>

/* "No opinion": hand the packet on. TC_ACT_UNSPEC is TCX_NEXT for tcx
 * links and "continue with the next filter" for clsact direct-action, so
 * other programs and filters on the same hook (another tool's tcx program,
 * a chained CNI plugin's filter) still run; with none left the packet goes
 * to the stack. TC_ACT_OK would end the hook and skip them. */
#define PN_PASS TC_ACT_UNSPEC
