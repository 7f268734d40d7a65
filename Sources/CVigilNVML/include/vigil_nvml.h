/*
 * Vigil's own declarations of the few NVML types it uses, written from the layouts documented for
 * NVML API 13 (LP64 Linux). nvml.h is not vendored: the library is opened with dlopen and every
 * symbol looked up on its own, so only these shapes matter. Each layout is pinned by a size assert;
 * a mismatch fails the build instead of reading the wrong bytes at run time.
 */
#ifndef VIGIL_NVML_H
#define VIGIL_NVML_H

#include <stddef.h>

/* nvmlReturn_t values Vigil treats specially. */
enum {
    VIGIL_NVML_SUCCESS = 0,
    VIGIL_NVML_ERROR_UNINITIALIZED = 1,
    VIGIL_NVML_ERROR_INVALID_ARGUMENT = 2,
    VIGIL_NVML_ERROR_NOT_SUPPORTED = 3,
    VIGIL_NVML_ERROR_NO_PERMISSION = 4,
    VIGIL_NVML_ERROR_NOT_FOUND = 6,
    VIGIL_NVML_ERROR_INSUFFICIENT_SIZE = 7,
    VIGIL_NVML_ERROR_DRIVER_NOT_LOADED = 9,
    VIGIL_NVML_ERROR_TIMEOUT = 10,
    VIGIL_NVML_ERROR_LIBRARY_NOT_FOUND = 12,
    VIGIL_NVML_ERROR_FUNCTION_NOT_FOUND = 13,
    VIGIL_NVML_ERROR_GPU_IS_LOST = 15,
    VIGIL_NVML_ERROR_RESET_REQUIRED = 16,
    VIGIL_NVML_ERROR_OPERATING_SYSTEM = 17,
    VIGIL_NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18,
    VIGIL_NVML_ERROR_NO_DATA = 21,
    VIGIL_NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25,
    VIGIL_NVML_ERROR_DEPRECATED = 26,
    VIGIL_NVML_ERROR_NOT_READY = 27,
    VIGIL_NVML_ERROR_UNKNOWN = 999,
};

/* nvmlPciInfo_t (v3 layout). Calls older than _v3 fill only the first 52 bytes: busIdLegacy holds
 * the bus id then. */
typedef struct {
    char busIdLegacy[16];
    unsigned int domain;
    unsigned int bus;
    unsigned int device;
    unsigned int pciDeviceId;     /* deviceId << 16 | vendorId */
    unsigned int pciSubSystemId;
    char busId[32];
} vigil_nvml_pci_info;
_Static_assert(sizeof(vigil_nvml_pci_info) == 68, "nvmlPciInfo_t layout");
_Static_assert(offsetof(vigil_nvml_pci_info, busId) == 36, "nvmlPciInfo_t.busId offset");

/* nvmlUtilization_t: percent of the last sample period. */
typedef struct {
    unsigned int gpu;
    unsigned int memory;
} vigil_nvml_utilization;
_Static_assert(sizeof(vigil_nvml_utilization) == 8, "nvmlUtilization_t layout");

/* nvmlMemory_t (v1): used counts reserved memory too. */
typedef struct {
    unsigned long long total;
    unsigned long long free;
    unsigned long long used;
} vigil_nvml_memory_v1;
_Static_assert(sizeof(vigil_nvml_memory_v1) == 24, "nvmlMemory_t layout");

/* nvmlMemory_v2_t: used is allocated memory only. */
typedef struct {
    unsigned int version;
    unsigned long long total;
    unsigned long long reserved;
    unsigned long long free;
    unsigned long long used;
} vigil_nvml_memory_v2;
_Static_assert(sizeof(vigil_nvml_memory_v2) == 40, "nvmlMemory_v2_t layout");
_Static_assert(offsetof(vigil_nvml_memory_v2, used) == 32, "nvmlMemory_v2_t.used offset");
#define VIGIL_NVML_MEMORY_V2_VERSION 0x02000028u

/* nvmlTemperature_v1_t for nvmlDeviceGetTemperatureV. */
typedef struct {
    unsigned int version;
    unsigned int sensorType;      /* NVML_TEMPERATURE_GPU = 0 */
    int temperature;
} vigil_nvml_temperature_v1;
_Static_assert(sizeof(vigil_nvml_temperature_v1) == 12, "nvmlTemperature_v1_t layout");
#define VIGIL_NVML_TEMPERATURE_V1_VERSION 0x0100000Cu

/* Process records. The stride differs by driver: 16 bytes (v1), 24 (v2, and _v3 on most drivers),
 * 32 (_v3 on R535 drivers 535.43–535.8x, which appended usedGpuCcProtectedMemory). */
typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
} vigil_nvml_process_info_v1;
_Static_assert(sizeof(vigil_nvml_process_info_v1) == 16, "nvmlProcessInfo_v1_t layout");

typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId;     /* 0xFFFFFFFF when not MIG */
    unsigned int computeInstanceId;
} vigil_nvml_process_info_v2;
_Static_assert(sizeof(vigil_nvml_process_info_v2) == 24, "nvmlProcessInfo_t layout");
_Static_assert(offsetof(vigil_nvml_process_info_v2, gpuInstanceId) == 16, "nvmlProcessInfo_t.gpuInstanceId offset");

typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId;
    unsigned int computeInstanceId;
    unsigned long long usedGpuCcProtectedMemory;
} vigil_nvml_process_info_r535;
_Static_assert(sizeof(vigil_nvml_process_info_r535) == 32, "R535 _v3 process record layout");

/* nvmlProcessDetail_v1_t and nvmlProcessDetailList_v1_t (nvmlDeviceGetRunningProcessDetailList,
 * header 12.2 and later): a versioned list, so its record size is never in doubt. */
typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId;
    unsigned int computeInstanceId;
    unsigned long long usedGpuCcProtectedMemory;
} vigil_nvml_process_detail_v1;
_Static_assert(sizeof(vigil_nvml_process_detail_v1) == 32, "nvmlProcessDetail_v1_t layout");

typedef struct {
    unsigned int version;
    unsigned int mode;                 /* 0 compute, 1 graphics, 2 MPS compute */
    unsigned int numProcArrayEntries;
    vigil_nvml_process_detail_v1 *procArray;
} vigil_nvml_process_detail_list_v1;
_Static_assert(sizeof(vigil_nvml_process_detail_list_v1) == 24, "nvmlProcessDetailList_v1_t layout");
_Static_assert(offsetof(vigil_nvml_process_detail_list_v1, procArray) == 16, "nvmlProcessDetailList_v1_t.procArray offset");
#define VIGIL_NVML_PROCESS_DETAIL_LIST_V1_VERSION 0x01000018u

/* nvmlEventData_t. device is the opaque nvmlDevice_t (one pointer). */
typedef struct {
    void *device;
    unsigned long long eventType;
    unsigned long long eventData;   /* the XID for XID events; 999 = unknown XID */
    unsigned int gpuInstanceId;
    unsigned int computeInstanceId;
} vigil_nvml_event_data;
_Static_assert(sizeof(vigil_nvml_event_data) == 32, "nvmlEventData_t layout");

/* Event type bits. */
#define VIGIL_NVML_EVENT_SINGLE_BIT_ECC 0x1ull
#define VIGIL_NVML_EVENT_DOUBLE_BIT_ECC 0x2ull
#define VIGIL_NVML_EVENT_PSTATE 0x4ull
#define VIGIL_NVML_EVENT_XID 0x8ull
#define VIGIL_NVML_EVENT_MIG_CONFIG_CHANGE 0x100ull
#define VIGIL_NVML_EVENT_GPU_UNAVAILABLE 0x4000ull

/* nvmlFieldValue_t for nvmlDeviceGetFieldValues: each entry carries its own return code. */
typedef struct {
    unsigned int fieldId;
    unsigned int scopeId;
    long long timestamp;          /* microseconds since the epoch */
    long long latencyUsec;
    unsigned int valueType;       /* 0 double, 1 uint, 2 ulong, 3 ull, 4 sll, 5 int, 6 ushort */
    int nvmlReturn;
    union {
        double dVal;
        int siVal;
        unsigned int uiVal;
        unsigned long ulVal;
        unsigned long long ullVal;
        long long sllVal;
        unsigned short usVal;
    } value;
} vigil_nvml_field_value;
_Static_assert(sizeof(vigil_nvml_field_value) == 40, "nvmlFieldValue_t layout");
_Static_assert(offsetof(vigil_nvml_field_value, value) == 32, "nvmlFieldValue_t.value offset");

/* Field ids: cumulative PCIe bytes since driver load (may wrap). */
#define VIGIL_NVML_FI_DEV_PCIE_COUNT_TX_BYTES 197u
#define VIGIL_NVML_FI_DEV_PCIE_COUNT_RX_BYTES 198u

/* A value meaning "not available" in unsigned fields (NVML_VALUE_NOT_AVAILABLE, all ones). */
#define VIGIL_NVML_VALUE_NOT_AVAILABLE_ULL 0xFFFFFFFFFFFFFFFFull

#endif
