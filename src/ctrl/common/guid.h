/* SPDX-License-Identifier: MIT */
/* Random GUIDs for the ids controllers make up themselves (a NIC, a vPCI device, a Plan9 share):
 * RFC 4122 version 4, lower-case, "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx". */
#pragma once

/* The text form's size with its terminating NUL. */
#define CTRL_GUID_LEN 37

/* Writes a new random GUID into buf. Returns 0, or -EIO when the kernel gives no randomness. */
int ctrl_new_guid(char buf[CTRL_GUID_LEN]);
