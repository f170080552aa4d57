/*
 * Argument validation for QMP commands: the checks QEMU's input visitor
 * makes before a command runs (docs/qmp.md, "Wire protocol"), from the command's
 * `struct mr_qmp_arg` table.  Members are checked in table order (missing,
 * then type and range), then unknown members are refused.  Pure.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "qmp/qmp_internal.h"

static const char *type_word(enum mr_qmp_type type)
{
    switch (type) {
    case MR_QMP_T_STR:
        return "string";
    case MR_QMP_T_STR_OR_NULL:
        return "StrOrNull";
    case MR_QMP_T_BOOL:
        return "boolean";
    case MR_QMP_T_NUMBER:
        return "number";
    case MR_QMP_T_OBJECT:
        return "object";
    case MR_QMP_T_ARRAY:
        return "array";
    default:
        return "integer";
    }
}

static int bad_type(const char *name, enum mr_qmp_type type,
                    struct mr_error *err)
{
    return mr_error_set(err, -EINVAL,
                        "Invalid parameter type for '%s', expected: %s",
                        name, type_word(type));
}

static int check_unsigned(const char *name, enum mr_qmp_type type,
                          json_t *v, struct mr_error *err)
{
    static const struct { enum mr_qmp_type type; uint64_t max; const char *c; }
    limits[] = {
        { MR_QMP_T_UINT8, UINT8_MAX, "uint8_t" },
        { MR_QMP_T_UINT16, UINT16_MAX, "uint16_t" },
        { MR_QMP_T_UINT32, UINT32_MAX, "uint32_t" },
    };
    size_t i;

    /* QEMU reads every unsigned member as uint64 first, so a string, a
     * negative or a fractional value fails with the 64-bit wording. */
    if (json_is_string(v) || json_is_real(v) ||
        (json_is_integer(v) && json_integer_value(v) < 0))
        return mr_error_set(err, -EINVAL, "Parameter '%s' expects uint64",
                            name);
    if (!json_is_integer(v))
        return bad_type(name, type, err);
    for (i = 0; i < sizeof(limits) / sizeof(limits[0]); i++)
        if (limits[i].type == type &&
            (uint64_t)json_integer_value(v) > limits[i].max)
            return mr_error_set(err, -ERANGE, "Parameter '%s' expects %s",
                                name, limits[i].c);
    return 0;
}

static int check_one(const struct mr_qmp_arg *rule, json_t *v,
                     struct mr_error *err)
{
    bool ok;

    switch (rule->type) {
    case MR_QMP_T_ANY:
        return 0;
    case MR_QMP_T_STR:
        ok = json_is_string(v);
        break;
    case MR_QMP_T_STR_OR_NULL:
        ok = json_is_string(v) || json_is_null(v);
        break;
    case MR_QMP_T_BOOL:
        ok = json_is_boolean(v);
        break;
    case MR_QMP_T_INT:
        ok = json_is_integer(v);
        break;
    case MR_QMP_T_UINT8:
    case MR_QMP_T_UINT16:
    case MR_QMP_T_UINT32:
    case MR_QMP_T_UINT64:
        return check_unsigned(rule->name, rule->type, v, err);
    case MR_QMP_T_NUMBER:
        ok = json_is_number(v);
        break;
    case MR_QMP_T_OBJECT:
        ok = json_is_object(v);
        break;
    case MR_QMP_T_ARRAY:
        ok = json_is_array(v);
        break;
    default:
        ok = false;
    }
    return ok ? 0 : bad_type(rule->name, rule->type, err);
}

static bool has_rule(const struct mr_qmp_arg *rules, const char *key)
{
    for (; rules && rules->name; rules++)
        if (!strcmp(rules->name, key))
            return true;
    return false;
}

int mr_qmp_args_check(const struct mr_qmp_arg *rules, json_t *args,
                      struct mr_error *err)
{
    const struct mr_qmp_arg *r;
    const char *key;
    json_t *v;
    int rc;

    for (r = rules; r && r->name; r++) {
        v = json_object_get(args, r->name);
        if (!v) {
            if (r->optional)
                continue;
            return mr_error_set(err, -EINVAL, "Parameter '%s' is missing",
                                r->name);
        }
        rc = check_one(r, v, err);
        if (rc < 0)
            return rc;
    }
    json_object_foreach(args, key, v) {
        if (!has_rule(rules, key))
            return mr_error_set(err, -EINVAL, "Parameter '%s' is unexpected",
                                key);
    }
    return 0;
}
