/* SPDX-License-Identifier: MIT */
/* Prints the fault points of the host compute and guest backends (src/hcs/fault.h), one per
 * line, for the fault sweep. */
#include <stdio.h>

#include "hcs/fault.h"

int main(void)
{
        for (size_t i = 0; i < hcs_fault_count(); i++)
                printf("%s\n", hcs_fault_name(i));
        return hcs_fault_count() > 0 ? 0 : 1;
}
