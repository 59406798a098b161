/*
 * A PKCS#11 module for tests that forwards every call to a real module (SoftHSM2) and fails
 * some on demand, as a broken or restarted HSM would. Built by tests/hsm.rs with gcc.
 *
 *   CCS_FAULT_REAL_MODULE  the real module to forward to
 *   CCS_FAULT_FILE         while this file exists, its first word picks the fault:
 *     device   C_WrapKey, C_FindObjectsInit, C_OpenSession, C_GetSlotList, C_GenerateKey and
 *              C_CreateObject return CKR_DEVICE_ERROR (the token is gone until the file is);
 *     session  the next C_FindObjectsInit really closes its session and returns
 *              CKR_SESSION_HANDLE_INVALID (one shot: the file is removed);
 *     logout   the next C_FindObjectsInit really logs the token out and returns
 *              CKR_USER_NOT_LOGGED_IN (one shot: the file is removed);
 *     careless C_CreateObject creates objects with CKA_SENSITIVE false whatever it is asked,
 *              as a token with a lax policy might.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

static CK_FUNCTION_LIST_PTR real;
static CK_FUNCTION_LIST shim;

/* 0: none, 1: device, 2: session, 3: logout, 4: careless */
static int fault(void) {
    const char *path = getenv("CCS_FAULT_FILE");
    if (path == NULL) return 0;
    FILE *f = fopen(path, "r");
    if (f == NULL) return 0;
    char word[16] = {0};
    if (fscanf(f, "%15s", word) != 1) word[0] = 0;
    fclose(f);
    if (strcmp(word, "session") == 0) return 2;
    if (strcmp(word, "logout") == 0) return 3;
    if (strcmp(word, "careless") == 0) return 4;
    return 1;
}

static void clear(void) {
    const char *path = getenv("CCS_FAULT_FILE");
    if (path != NULL) unlink(path);
}

static CK_RV wrap_key(CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE w,
                      CK_OBJECT_HANDLE k, CK_BYTE_PTR out, CK_ULONG_PTR len) {
    if (fault() == 1) return CKR_DEVICE_ERROR;
    return real->C_WrapKey(s, m, w, k, out, len);
}

static CK_RV find_objects_init(CK_SESSION_HANDLE s, CK_ATTRIBUTE_PTR t, CK_ULONG n) {
    switch (fault()) {
    case 1:
        return CKR_DEVICE_ERROR;
    case 2:
        clear();
        real->C_CloseSession(s);
        return CKR_SESSION_HANDLE_INVALID;
    case 3:
        clear();
        real->C_Logout(s);
        return CKR_USER_NOT_LOGGED_IN;
    }
    return real->C_FindObjectsInit(s, t, n);
}

static CK_RV open_session(CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR app, CK_NOTIFY notify,
                          CK_SESSION_HANDLE_PTR out) {
    if (fault() == 1) return CKR_DEVICE_ERROR;
    return real->C_OpenSession(slot, flags, app, notify, out);
}

static CK_RV get_slot_list(CK_BBOOL present, CK_SLOT_ID_PTR list, CK_ULONG_PTR count) {
    if (fault() == 1) return CKR_DEVICE_ERROR;
    return real->C_GetSlotList(present, list, count);
}

static CK_RV generate_key(CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_ATTRIBUTE_PTR t,
                          CK_ULONG n, CK_OBJECT_HANDLE_PTR out) {
    if (fault() == 1) return CKR_DEVICE_ERROR;
    return real->C_GenerateKey(s, m, t, n, out);
}

static CK_RV create_object(CK_SESSION_HANDLE s, CK_ATTRIBUTE_PTR t, CK_ULONG n,
                           CK_OBJECT_HANDLE_PTR out) {
    switch (fault()) {
    case 1:
        return CKR_DEVICE_ERROR;
    case 4: {
        static CK_BBOOL no = CK_FALSE;
        CK_ATTRIBUTE copy[64];
        if (n > 64) return CKR_ARGUMENTS_BAD;
        for (CK_ULONG i = 0; i < n; i++) {
            copy[i] = t[i];
            if (t[i].type == CKA_SENSITIVE) {
                copy[i].pValue = &no;
                copy[i].ulValueLen = sizeof no;
            }
        }
        return real->C_CreateObject(s, copy, n, out);
    }
    }
    return real->C_CreateObject(s, t, n, out);
}

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR out) {
    if (real == NULL) {
        const char *module = getenv("CCS_FAULT_REAL_MODULE");
        if (module == NULL) return CKR_GENERAL_ERROR;
        void *handle = dlopen(module, RTLD_NOW | RTLD_LOCAL);
        if (handle == NULL) return CKR_GENERAL_ERROR;
        CK_C_GetFunctionList get = (CK_C_GetFunctionList)dlsym(handle, "C_GetFunctionList");
        if (get == NULL || get(&real) != CKR_OK) return CKR_GENERAL_ERROR;
        shim = *real;
        shim.C_WrapKey = wrap_key;
        shim.C_FindObjectsInit = find_objects_init;
        shim.C_OpenSession = open_session;
        shim.C_GetSlotList = get_slot_list;
        shim.C_GenerateKey = generate_key;
        shim.C_CreateObject = create_object;
    }
    *out = &shim;
    return CKR_OK;
}
