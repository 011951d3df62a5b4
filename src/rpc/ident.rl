/* SPDX-License-Identifier: MIT */
/* Validators for ids, paths and method names; each is a ragel machine that must end in a
 * final state having consumed every byte. */
#include "rpc/ident.h"

#include <errno.h>

%%{
        machine ttrpc_id;
        alnum_run = [A-Za-z0-9]+;
        main := alnum_run ( [._\-] alnum_run )*;
        write data noerror noentry;
}%%

%%{
        machine ttrpc_path;
        # one component: anything but '/' and NUL, except exactly ".."
        comp = ( ( any - [/\0] )+ ) - '..';
        main := ( '/' comp? )+;
        write data noerror noentry;
}%%

%%{
        machine ttrpc_method;
        ident = [A-Za-z_] [A-Za-z0-9_]*;
        main := '/' ident ( '.' ident )* '/' ident;
        write data noerror noentry;
}%%

int ttrpc_valid_id(const char *s, size_t len)
{
        if (len == 0)
                return -EINVAL;
        if (len > TTRPC_ID_MAX)
                return -ENAMETOOLONG;
        int cs;
        const char *p = s, *pe = s + len;
        %%{
                machine ttrpc_id;
                write init;
                write exec;
        }%%
        return (p == pe && cs >= ttrpc_id_first_final) ? 0 : -EINVAL;
}

int ttrpc_valid_path(const char *s, size_t len)
{
        if (len == 0)
                return -EINVAL;
        if (len > TTRPC_PATH_MAX)
                return -ENAMETOOLONG;
        int cs;
        const char *p = s, *pe = s + len;
        %%{
                machine ttrpc_path;
                write init;
                write exec;
        }%%
        return (p == pe && cs >= ttrpc_path_first_final) ? 0 : -EINVAL;
}

int ttrpc_valid_method(const char *s, size_t len)
{
        if (len == 0)
                return -EINVAL;
        if (len > TTRPC_METHOD_MAX)
                return -ENAMETOOLONG;
        int cs;
        const char *p = s, *pe = s + len;
        %%{
                machine ttrpc_method;
                write init;
                write exec;
        }%%
        return (p == pe && cs >= ttrpc_method_first_final) ? 0 : -EINVAL;
}
