/*
 * A fake libnvidia-ml.so.1 driven by a JSON scenario. See include/vigil_fake_nvml.h and the README's
 * testing section. Every call takes one lock, re-reads the scenario if the file changed, counts
 * itself, and answers from the scenario: a key that is absent means NOT_SUPPORTED, as on a real board
 * without that feature.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "json.h"
#include "vigil_fake_nvml.h"
#include "vigil_nvml.h"

#define MAX_GPUS 64
#define MAX_MIG 8

/* Every exported NVML symbol, in one list: it numbers the call counters and names them. */
#define FAKE_EXPORTS(X) \
    X(nvmlInit_v2) X(nvmlInit) X(nvmlInitWithFlags) X(nvmlShutdown) X(nvmlErrorString) \
    X(nvmlSystemGetDriverVersion) X(nvmlSystemGetNVMLVersion) X(nvmlSystemGetCudaDriverVersion_v2) \
    X(nvmlSystemGetCudaDriverVersion) \
    X(nvmlDeviceGetCount_v2) X(nvmlDeviceGetCount) X(nvmlDeviceGetHandleByIndex_v2) X(nvmlDeviceGetHandleByIndex) \
    X(nvmlDeviceGetHandleByUUID) X(nvmlDeviceGetIndex) X(nvmlDeviceGetName) X(nvmlDeviceGetUUID) \
    X(nvmlDeviceGetPciInfo_v3) X(nvmlDeviceGetPciInfo_v2) X(nvmlDeviceGetPciInfo) \
    X(nvmlDeviceGetUtilizationRates) X(nvmlDeviceGetMemoryInfo) X(nvmlDeviceGetMemoryInfo_v2) \
    X(nvmlDeviceGetTemperature) X(nvmlDeviceGetTemperatureV) \
    X(nvmlDeviceGetPowerUsage) X(nvmlDeviceGetPowerManagementLimit) X(nvmlDeviceGetEnforcedPowerLimit) \
    X(nvmlDeviceGetTotalEnergyConsumption) X(nvmlDeviceGetClockInfo) X(nvmlDeviceGetMaxClockInfo) \
    X(nvmlDeviceGetNumFans) X(nvmlDeviceGetFanSpeed_v2) X(nvmlDeviceGetFanSpeed) X(nvmlDeviceGetPerformanceState) \
    X(nvmlDeviceGetCurrentClocksEventReasons) X(nvmlDeviceGetCurrentClocksThrottleReasons) \
    X(nvmlDeviceGetSupportedClocksEventReasons) X(nvmlDeviceGetSupportedClocksThrottleReasons) \
    X(nvmlDeviceGetTotalEccErrors) X(nvmlDeviceGetRemappedRows) \
    X(nvmlDeviceGetCurrPcieLinkGeneration) X(nvmlDeviceGetCurrPcieLinkWidth) X(nvmlDeviceGetPcieThroughput) X(nvmlDeviceGetFieldValues) \
    X(nvmlDeviceGetMigMode) X(nvmlDeviceGetMaxMigDeviceCount) X(nvmlDeviceGetMigDeviceHandleByIndex) \
    X(nvmlDeviceIsMigDeviceHandle) X(nvmlDeviceGetGpuInstanceId) X(nvmlDeviceGetComputeInstanceId) \
    X(nvmlDeviceGetComputeRunningProcesses_v3) X(nvmlDeviceGetComputeRunningProcesses_v2) \
    X(nvmlDeviceGetComputeRunningProcesses) X(nvmlDeviceGetGraphicsRunningProcesses_v3) \
    X(nvmlDeviceGetGraphicsRunningProcesses_v2) X(nvmlDeviceGetGraphicsRunningProcesses) \
    X(nvmlDeviceGetMPSComputeRunningProcesses_v3) X(nvmlDeviceGetRunningProcessDetailList) \
    X(nvmlDeviceGetConfComputeMemSizeInfo) \
    X(nvmlEventSetCreate) X(nvmlDeviceGetSupportedEventTypes) X(nvmlDeviceRegisterEvents) \
    X(nvmlEventSetWait_v2) X(nvmlEventSetWait) X(nvmlEventSetFree)

enum {
#define X(name) ID_##name,
    FAKE_EXPORTS(X)
#undef X
    ID_COUNT
};

static const char *const export_names[ID_COUNT] = {
#define X(name) #name,
    FAKE_EXPORTS(X)
#undef X
};

typedef struct {
    int gpu;
    int slot; /* MIG slot, -1 for the whole GPU */
} fake_device;

typedef struct {
    unsigned long long registered[MAX_GPUS];
    int delivered[MAX_GPUS];
} fake_event_set;

typedef struct {
    const fj_node *node;
    long reads;
} ramp_state;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long call_counts[ID_COUNT];
static char scenario_path[4096];
static struct stat scenario_stat;
static fj_node *scenario;
static int init_calls;
static int initialized;
static fake_device gpu_handles[MAX_GPUS];
static fake_device mig_handles[MAX_GPUS][MAX_MIG];
static ramp_state ramps[1024];
static int ramp_count;

/* ---- the scenario file ---------------------------------------------------------------------- */

static int same_file(const struct stat *a, const struct stat *b) {
    return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size
        && a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec
        && a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* Reads the scenario again when the file changed. A file that does not parse is reported on stderr
 * and the previous scenario stays. Called with the lock held. */
static void reload_if_changed(void) {
    if (!scenario_path[0]) return;
    struct stat st;
    if (stat(scenario_path, &st) != 0) return;
    if (scenario && same_file(&st, &scenario_stat)) return;
    FILE *file = fopen(scenario_path, "rb");
    if (!file) return;
    char *text = malloc((size_t)st.st_size + 1);
    size_t length = text ? fread(text, 1, (size_t)st.st_size, file) : 0;
    fclose(file);
    if (!text) return;
    text[length] = '\0';
    char error[256];
    fj_node *parsed = fj_parse(text, error, sizeof error);
    free(text);
    scenario_stat = st;
    if (!parsed) {
        fprintf(stderr, "vigil fake NVML: %s: %s (keeping the previous scenario)\n", scenario_path, error);
        return;
    }
    fj_free(scenario);
    scenario = parsed;
    ramp_count = 0;
}

static const fj_node *gpus(void) { return fj_get(scenario, "gpus"); }

static int gpu_count(void) {
    int n = fj_length(gpus());
    return n > MAX_GPUS ? MAX_GPUS : n;
}

/* A number, or a ramp {"from": a, "to": b, "step": s} that advances one step per read. */
static int number(const fj_node *node, double *out) {
    if (!node) return 0;
    if (node->type == FJ_NUMBER || node->type == FJ_BOOL) { *out = node->number; return 1; }
    if (node->type != FJ_OBJECT) return 0;
    const fj_node *from = fj_get(node, "from");
    if (!from || from->type != FJ_NUMBER) return 0;
    ramp_state *ramp = NULL;
    for (int i = 0; i < ramp_count; i++) if (ramps[i].node == node) ramp = &ramps[i];
    if (!ramp && ramp_count < (int)(sizeof ramps / sizeof ramps[0])) {
        ramp = &ramps[ramp_count++];
        ramp->node = node;
        ramp->reads = 0;
    }
    const fj_node *to = fj_get(node, "to"), *step = fj_get(node, "step");
    double s = step && step->type == FJ_NUMBER ? step->number : 1;
    double value = from->number + s * (double)(ramp ? ramp->reads++ : 0);
    if (to && to->type == FJ_NUMBER) {
        if (s >= 0 && value > to->number) value = to->number;
        if (s < 0 && value < to->number) value = to->number;
    }
    *out = value;
    return 1;
}

static int member(const fj_node *object, const char *key, double *out) {
    return number(fj_get(object, key), out);
}

static int return_code(const fj_node *node, int fallback) {
    if (!node) return fallback;
    if (node->type == FJ_NUMBER) return (int)node->number;
    if (node->type != FJ_STRING) return fallback;
    static const struct { const char *name; int code; } names[] = {
        {"UNINITIALIZED", 1}, {"INVALID_ARGUMENT", 2}, {"NOT_SUPPORTED", 3}, {"NO_PERMISSION", 4},
        {"NOT_FOUND", 6}, {"INSUFFICIENT_SIZE", 7}, {"DRIVER_NOT_LOADED", 9}, {"TIMEOUT", 10},
        {"LIBRARY_NOT_FOUND", 12}, {"FUNCTION_NOT_FOUND", 13}, {"GPU_IS_LOST", 15}, {"RESET_REQUIRED", 16},
        {"OPERATING_SYSTEM", 17}, {"LIB_RM_VERSION_MISMATCH", 18}, {"NO_DATA", 21}, {"UNKNOWN", 999},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(names[i].name, node->string) == 0) return names[i].code;
    }
    return fallback;
}

/* ---- calls ------------------------------------------------------------------------------------ */

#define BEGIN(name) \
    pthread_mutex_lock(&lock); \
    call_counts[ID_##name]++; \
    reload_if_changed()

#define RETURN(code) do { int code__ = (code); pthread_mutex_unlock(&lock); return code__; } while (0)

/* Resolves a device handle for a call: the GPU's scenario object, and the MIG instance's for a MIG
 * handle. Lost GPUs answer GPU_IS_LOST; functions named in "not_supported" answer NOT_SUPPORTED. */
static int resolve(const char *function, void *handle, const fj_node **gpu, const fj_node **mig) {
    if (!initialized) return VIGIL_NVML_ERROR_UNINITIALIZED;
    if (!handle) return VIGIL_NVML_ERROR_INVALID_ARGUMENT;
    const fake_device *device = handle;
    *gpu = fj_at(gpus(), device->gpu);
    if (!*gpu) return VIGIL_NVML_ERROR_INVALID_ARGUMENT;
    const fj_node *lost = fj_get(*gpu, "lost");
    if (lost && lost->type == FJ_BOOL && lost->number) return VIGIL_NVML_ERROR_GPU_IS_LOST;
    if (fj_contains(fj_get(*gpu, "not_supported"), function)) return VIGIL_NVML_ERROR_NOT_SUPPORTED;
    *mig = NULL;
    if (device->slot >= 0) {
        *mig = fj_at(fj_get(fj_get(*gpu, "mig"), "instances"), device->slot);
        if (!*mig) return VIGIL_NVML_ERROR_NOT_FOUND;
    }
    return VIGIL_NVML_SUCCESS;
}

#define DEVICE(name, handle) \
    BEGIN(name); \
    const fj_node *gpu = NULL, *mig = NULL; \
    { int rc__ = resolve(#name, (handle), &gpu, &mig); if (rc__) RETURN(rc__); } \
    (void)gpu; (void)mig

/* Most queries have no meaning on a MIG handle (clocks, fans, utilisation, P-state). */
#define WHOLE_GPU_ONLY() do { if (mig) RETURN(VIGIL_NVML_ERROR_NOT_SUPPORTED); } while (0)

static int mig_enabled(const fj_node *gpu) {
    double mode = 0;
    return member(fj_get(gpu, "mig"), "mode", &mode) && mode == 1;
}

static int copy_string(const char *value, char *buffer, unsigned int length) {
    if (!buffer) return VIGIL_NVML_ERROR_INVALID_ARGUMENT;
    if (strlen(value) + 1 > length) return VIGIL_NVML_ERROR_INSUFFICIENT_SIZE;
    strcpy(buffer, value);
    return VIGIL_NVML_SUCCESS;
}

/* A unsigned-int query answered by one member of the GPU object (NOT_SUPPORTED when absent). */
static int uint_member(const fj_node *object, const char *key, unsigned int *out, double scale) {
    double value;
    if (!out) return VIGIL_NVML_ERROR_INVALID_ARGUMENT;
    if (!member(object, key, &value)) return VIGIL_NVML_ERROR_NOT_SUPPORTED;
    *out = (unsigned int)(value * scale + 0.5);
    return VIGIL_NVML_SUCCESS;
}

static int ull_member(const fj_node *object, const char *key, unsigned long long *out, double scale) {
    double value;
    if (!out) return VIGIL_NVML_ERROR_INVALID_ARGUMENT;
    if (!member(object, key, &value)) return VIGIL_NVML_ERROR_NOT_SUPPORTED;
    *out = (unsigned long long)(value * scale + 0.5);
    return VIGIL_NVML_SUCCESS;
}

static int do_init(void) {
    init_calls++;
    const fj_node *init = fj_get(scenario, "init");
    const fj_node *error = fj_get(init, "error");
    if (error) {
        double failures = -1;
        member(init, "failures", &failures);
        if (failures < 0 || init_calls <= failures) return return_code(error, VIGIL_NVML_ERROR_UNKNOWN);
    }
    if (!scenario && init_calls == 1) {
        fprintf(stderr, "vigil fake NVML: no scenario (set VIGIL_FAKE_NVML_CONFIG or put fake-nvml.json beside the library); 0 GPUs\n");
    }
    initialized++;
    return VIGIL_NVML_SUCCESS;
}

int nvmlInit_v2(void) { BEGIN(nvmlInit_v2); RETURN(do_init()); }
int nvmlInit(void) { BEGIN(nvmlInit); RETURN(do_init()); }
int nvmlInitWithFlags(unsigned int flags) { (void)flags; BEGIN(nvmlInitWithFlags); RETURN(do_init()); }

int nvmlShutdown(void) {
    BEGIN(nvmlShutdown);
    if (!initialized) RETURN(VIGIL_NVML_ERROR_UNINITIALIZED);
    initialized--;
    RETURN(VIGIL_NVML_SUCCESS);
}

const char *nvmlErrorString(int result) {
    pthread_mutex_lock(&lock);
    call_counts[ID_nvmlErrorString]++;
    pthread_mutex_unlock(&lock);
    switch (result) {
    case 0: return "Success";
    case 1: return "Uninitialized";
    case 2: return "Invalid Argument";
    case 3: return "Not Supported";
    case 4: return "Insufficient Permissions";
    case 6: return "Not Found";
    case 7: return "Insufficient Size";
    case 9: return "Driver Not Loaded";
    case 10: return "Timeout";
    case 12: return "NVML Shared Library Not Found";
    case 13: return "Function Not Found";
    case 15: return "GPU is lost";
    case 16: return "GPU requires restart";
    case 17: return "The operating system has blocked the request.";
    case 18: return "RM has detected an NVML/RM version mismatch.";
    case 21: return "No data";
    case 25: return "Argument version mismatch";
    default: return "Unknown Error";
    }
}

int nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    BEGIN(nvmlSystemGetDriverVersion);
    if (!initialized) RETURN(VIGIL_NVML_ERROR_UNINITIALIZED);
    RETURN(copy_string(fj_string(scenario, "driver_version", "550.54.15"), version, length));
}

int nvmlSystemGetNVMLVersion(char *version, unsigned int length) {
    BEGIN(nvmlSystemGetNVMLVersion);
    if (!initialized) RETURN(VIGIL_NVML_ERROR_UNINITIALIZED);
    RETURN(copy_string(fj_string(scenario, "nvml_version", "12.550.54.15"), version, length));
}

static int cuda_version(int *out) {
    double value = 12040;
    if (!initialized) return VIGIL_NVML_ERROR_UNINITIALIZED;
    if (!out) return VIGIL_NVML_ERROR_INVALID_ARGUMENT;
    member(scenario, "cuda_driver_version", &value);
    *out = (int)value;
    return VIGIL_NVML_SUCCESS;
}

int nvmlSystemGetCudaDriverVersion_v2(int *version) { BEGIN(nvmlSystemGetCudaDriverVersion_v2); RETURN(cuda_version(version)); }
int nvmlSystemGetCudaDriverVersion(int *version) { BEGIN(nvmlSystemGetCudaDriverVersion); RETURN(cuda_version(version)); }

static int count(unsigned int *out) {
    if (!initialized) return VIGIL_NVML_ERROR_UNINITIALIZED;
    if (!out) return VIGIL_NVML_ERROR_INVALID_ARGUMENT;
    *out = (unsigned int)gpu_count();
    return VIGIL_NVML_SUCCESS;
}

int nvmlDeviceGetCount_v2(unsigned int *n) { BEGIN(nvmlDeviceGetCount_v2); RETURN(count(n)); }
int nvmlDeviceGetCount(unsigned int *n) { BEGIN(nvmlDeviceGetCount); RETURN(count(n)); }

static int handle_by_index(unsigned int index, void **device) {
    if (!initialized) return VIGIL_NVML_ERROR_UNINITIALIZED;
    if (!device || (int)index >= gpu_count()) return VIGIL_NVML_ERROR_INVALID_ARGUMENT;
    const fj_node *gpu = fj_at(gpus(), (int)index);
    const fj_node *lost = fj_get(gpu, "lost");
    if (lost && lost->type == FJ_BOOL && lost->number) return VIGIL_NVML_ERROR_GPU_IS_LOST;
    const fj_node *denied = fj_get(gpu, "no_permission");
    if (denied && denied->type == FJ_BOOL && denied->number) return VIGIL_NVML_ERROR_NO_PERMISSION;
    gpu_handles[index].gpu = (int)index;
    gpu_handles[index].slot = -1;
    *device = &gpu_handles[index];
    return VIGIL_NVML_SUCCESS;
}

int nvmlDeviceGetHandleByIndex_v2(unsigned int index, void **device) {
    BEGIN(nvmlDeviceGetHandleByIndex_v2);
    RETURN(handle_by_index(index, device));
}

int nvmlDeviceGetHandleByIndex(unsigned int index, void **device) {
    BEGIN(nvmlDeviceGetHandleByIndex);
    RETURN(handle_by_index(index, device));
}

int nvmlDeviceGetHandleByUUID(const char *uuid, void **device) {
    BEGIN(nvmlDeviceGetHandleByUUID);
    if (!initialized) RETURN(VIGIL_NVML_ERROR_UNINITIALIZED);
    if (!uuid || !device) RETURN(VIGIL_NVML_ERROR_INVALID_ARGUMENT);
    for (int i = 0; i < gpu_count(); i++) {
        const fj_node *gpu = fj_at(gpus(), i);
        if (strcmp(fj_string(gpu, "uuid", ""), uuid) == 0) RETURN(handle_by_index((unsigned int)i, device));
    }
    RETURN(VIGIL_NVML_ERROR_NOT_FOUND);
}

int nvmlDeviceGetIndex(void *device, unsigned int *index) {
    DEVICE(nvmlDeviceGetIndex, device);
    if (!index) RETURN(VIGIL_NVML_ERROR_INVALID_ARGUMENT);
    *index = (unsigned int)((fake_device *)device)->gpu;
    RETURN(VIGIL_NVML_SUCCESS);
}

int nvmlDeviceGetName(void *device, char *name, unsigned int length) {
    DEVICE(nvmlDeviceGetName, device);
    if (mig) {
        char composed[128];
        const char *own = fj_string(mig, "name", NULL);
        if (!own) {
            snprintf(composed, sizeof composed, "%s MIG %s", fj_string(gpu, "name", "NVIDIA Fake GPU"),
                     fj_string(mig, "profile", "1g.10gb"));
            own = composed;
        }
        RETURN(copy_string(own, name, length));
    }
    RETURN(copy_string(fj_string(gpu, "name", "NVIDIA Fake GPU"), name, length));
}

int nvmlDeviceGetUUID(void *device, char *uuid, unsigned int length) {
    DEVICE(nvmlDeviceGetUUID, device);
    const char *value = fj_string(mig ? mig : gpu, "uuid", NULL);
    if (!value) RETURN(VIGIL_NVML_ERROR_NOT_SUPPORTED);
    RETURN(copy_string(value, uuid, length));
}

/* Fills the PCI struct; the v1/v2 calls fill only the legacy layout's first 52 bytes. */
static int pci_info(const fj_node *gpu, vigil_nvml_pci_info *pci, int v3) {
    if (!pci) return VIGIL_NVML_ERROR_INVALID_ARGUMENT;
    unsigned int domain = 0, bus = 0, dev = 0;
    if (sscanf(fj_string(gpu, "pci_bus_id", "00000000:00:00.0"), "%x:%x:%x", &domain, &bus, &dev) != 3) {
        return VIGIL_NVML_ERROR_UNKNOWN;
    }
    double id = 0x233010DE;
    member(gpu, "pci_device_id", &id);
    vigil_nvml_pci_info filled;
    memset(&filled, 0, sizeof filled);
    snprintf(filled.busIdLegacy, sizeof filled.busIdLegacy, "%04X:%02X:%02X.0", domain & 0xFFFF, bus, dev);
    filled.domain = domain;
    filled.bus = bus;
    filled.device = dev;
    filled.pciDeviceId = (unsigned int)id;
    snprintf(filled.busId, sizeof filled.busId, "%08X:%02X:%02X.0", domain, bus, dev);
    memcpy(pci, &filled, v3 ? sizeof filled : offsetof(vigil_nvml_pci_info, busId) + 16);
    return VIGIL_NVML_SUCCESS;
}

int nvmlDeviceGetPciInfo_v3(void *device, vigil_nvml_pci_info *pci) {
    DEVICE(nvmlDeviceGetPciInfo_v3, device);
    RETURN(pci_info(gpu, pci, 1));
}

int nvmlDeviceGetPciInfo_v2(void *device, vigil_nvml_pci_info *pci) {
    DEVICE(nvmlDeviceGetPciInfo_v2, device);
    RETURN(pci_info(gpu, pci, 0));
}

int nvmlDeviceGetPciInfo(void *device, vigil_nvml_pci_info *pci) {
    DEVICE(nvmlDeviceGetPciInfo, device);
    RETURN(pci_info(gpu, pci, 0));
}

int nvmlDeviceGetUtilizationRates(void *device, vigil_nvml_utilization *utilization) {
    DEVICE(nvmlDeviceGetUtilizationRates, device);
    WHOLE_GPU_ONLY();
    if (mig_enabled(gpu)) RETURN(VIGIL_NVML_ERROR_NOT_SUPPORTED);
    const fj_node *rates = fj_get(gpu, "utilization");
    if (!utilization) RETURN(VIGIL_NVML_ERROR_INVALID_ARGUMENT);
    int rc = uint_member(rates, "gpu", &utilization->gpu, 1);
    if (!rc) rc = uint_member(rates, "memory", &utilization->memory, 1);
    RETURN(rc);
}

/* total, reserved, used (allocated) of the GPU or MIG instance. */
static int memory(const fj_node *object, double *total, double *reserved, double *used) {
    const fj_node *memory = fj_get(object, "memory");
    if (!member(memory, "total", total)) return 0;
    *reserved = 0;
    *used = 0;
    member(memory, "reserved", reserved);
    member(memory, "used", used);
    return 1;
}

int nvmlDeviceGetMemoryInfo(void *device, vigil_nvml_memory_v1 *out) {
    DEVICE(nvmlDeviceGetMemoryInfo, device);
    double total, reserved, used;
    if (!out) RETURN(VIGIL_NVML_ERROR_INVALID_ARGUMENT);
    if (!memory(mig ? mig : gpu, &total, &reserved, &used)) RETURN(VIGIL_NVML_ERROR_NOT_SUPPORTED);
    out->total = (unsigned long long)total;
    out->used = (unsigned long long)(used + reserved); /* v1 counts reserved memory as used */
    out->free = out->total - out->used;
    RETURN(VIGIL_NVML_SUCCESS);
}

int nvmlDeviceGetMemoryInfo_v2(void *device, vigil_nvml_memory_v2 *out) {
    DEVICE(nvmlDeviceGetMemoryInfo_v2, device);
    double total, reserved, used;
    if (!out) RETURN(VIGIL_NVML_ERROR_INVALID_ARGUMENT);
    if (out->version != VIGIL_NVML_MEMORY_V2_VERSION) RETURN(VIGIL_NVML_ERROR_ARGUMENT_VERSION_MISMATCH);
    if (!memory(mig ? mig : gpu, &total, &reserved, &used)) RETURN(VIGIL_NVML_ERROR_NOT_SUPPORTED);
    out->total = (unsigned long long)total;
    out->reserved = (unsigned long long)reserved;
    out->used = (unsigned long long)used;
    out->free = out->total - out->reserved - out->used;
    RETURN(VIGIL_NVML_SUCCESS);
}

int nvmlDeviceGetTemperature(void *device, unsigned int sensor, unsigned int *temperature) {
    DEVICE(nvmlDeviceGetTemperature, device);
    WHOLE_GPU_ONLY();
    if (sensor != 0) RETURN(VIGIL_NVML_ERROR_INVALID_ARGUMENT);
    RETURN(uint_member(gpu, "temperature", temperature, 1));
}

int nvmlDeviceGetTemperatureV(void *device, vigil_nvml_temperature_v1 *out) {
    DEVICE(nvmlDeviceGetTemperatureV, device);
    WHOLE_GPU_ONLY();
    double value;
    if (!out) RETURN(VIGIL_NVML_ERROR_INVALID_ARGUMENT);
    if (out->version != VIGIL_NVML_TEMPERATURE_V1_VERSION) RETURN(VIGIL_NVML_ERROR_ARGUMENT_VERSION_MISMATCH);
    if (out->sensorType != 0) RETURN(VIGIL_NVML_ERROR_INVALID_ARGUMENT);
    if (!member(gpu, "temperature", &value)) RETURN(VIGIL_NVML_ERROR_NOT_SUPPORTED);
    out->temperature = (int)(value + (value < 0 ? -0.5 : 0.5));
    RETURN(VIGIL_NVML_SUCCESS);
}

int nvmlDeviceGetPowerUsage(void *device, unsigned int *milliwatts) {
    DEVICE(nvmlDeviceGetPowerUsage, device);
    WHOLE_GPU_ONLY();
    RETURN(uint_member(gpu, "power_watts", milliwatts, 1000));
}

int nvmlDeviceGetPowerManagementLimit(void *device, unsigned int *milliwatts) {
    DEVICE(nvmlDeviceGetPowerManagementLimit, device);
    WHOLE_GPU_ONLY();
    RETURN(uint_member(gpu, "power_limit_watts", milliwatts, 1000));
}

int nvmlDeviceGetEnforcedPowerLimit(void *device, unsigned int *milliwatts) {
    DEVICE(nvmlDeviceGetEnforcedPowerLimit, device);
    WHOLE_GPU_ONLY();
    if (fj_get(gpu, "enforced_power_limit_watts")) RETURN(uint_member(gpu, "enforced_power_limit_watts", milliwatts, 1000));
    RETURN(uint_member(gpu, "power_limit_watts", milliwatts, 1000));
}

int nvmlDeviceGetTotalEnergyConsumption(void *device, unsigned long long *millijoules) {
    DEVICE(nvmlDeviceGetTotalEnergyConsumption, device);
    WHOLE_GPU_ONLY();
    RETURN(ull_member(gpu, "energy_joules", millijoules, 1000));
}

static const char *clock_name(unsigned int type) {
    switch (type) {
    case 0: return "graphics";
    case 1: return "sm";
    case 2: return "memory";
    case 3: return "video";
    default: return NULL;
    }
}

int nvmlDeviceGetClockInfo(void *device, unsigned int type, unsigned int *mhz) {
    DEVICE(nvmlDeviceGetClockInfo, device);
    WHOLE_GPU_ONLY();
    if (!clock_name(type)) RETURN(VIGIL_NVML_ERROR_INVALID_ARGUMENT);
    RETURN(uint_member(fj_get(gpu, "clocks"), clock_name(type), mhz, 1));
}

int nvmlDeviceGetMaxClockInfo(void *device, unsigned int type, unsigned int *mhz) {
    DEVICE(nvmlDeviceGetMaxClockInfo, device);
    WHOLE_GPU_ONLY();
    if (!clock_name(type)) RETURN(VIGIL_NVML_ERROR_INVALID_ARGUMENT);
    RETURN(uint_member(fj_get(gpu, "max_clocks"), clock_name(type), mhz, 1));
}

int nvmlDeviceGetNumFans(void *device, unsigned int *fans) {
    DEVICE(nvmlDeviceGetNumFans, device);
    WHOLE_GPU_ONLY();
    const fj_node *list = fj_get(gpu, "fans");
    if (!list) RETURN(VIGIL_NVML_ERROR_NOT_SUPPORTED);
    if (!fans) RETURN(VIGIL_NVML_ERROR_INVALID_ARGUMENT);
    *fans = (unsigned int)fj_length(list);
    RETURN(VIGIL_NVML_SUCCESS);
}

static int fan_speed(const fj_node *gpu, unsigned int fan, unsigned int *speed) {
    const fj_node *list = fj_get(gpu, "fans");
    double value;
    if (!list) return VIGIL_NVML_ERROR_NOT_SUPPORTED;
    if (!speed || (int)fan >= fj_length(list)) return VIGIL_NVML_ERROR_INVALID_ARGUMENT;
    if (!number(fj_at(list, (int)fan), &value)) return VIGIL_NVML_ERROR_NOT_SUPPORTED;
    *speed = (unsigned int)(value + 0.5);
    return VIGIL_NVML_SUCCESS;
}

int nvmlDeviceGetFanSpeed_v2(void *device, unsigned int fan, unsigned int *speed) {
    DEVICE(nvmlDeviceGetFanSpeed_v2, device);
    WHOLE_GPU_ONLY();
    RETURN(fan_speed(gpu, fan, speed));
}

int nvmlDeviceGetFanSpeed(void *device, unsigned int *speed) {
    DEVICE(nvmlDeviceGetFanSpeed, device);
    WHOLE_GPU_ONLY();
    RETURN(fan_speed(gpu, 0, speed));
}

int nvmlDeviceGetPerformanceState(void *device, unsigned int *state) {
    DEVICE(nvmlDeviceGetPerformanceState, device);
    WHOLE_GPU_ONLY();
    RETURN(uint_member(gpu, "pstate", state, 1));
}

int nvmlDeviceGetCurrentClocksEventReasons(void *device, unsigned long long *reasons) {
    DEVICE(nvmlDeviceGetCurrentClocksEventReasons, device);
    WHOLE_GPU_ONLY();
    RETURN(ull_member(gpu, "clocks_event_reasons", reasons, 1));
}

int nvmlDeviceGetCurrentClocksThrottleReasons(void *device, unsigned long long *reasons) {
    DEVICE(nvmlDeviceGetCurrentClocksThrottleReasons, device);
    WHOLE_GPU_ONLY();
    RETURN(ull_member(gpu, "clocks_event_reasons", reasons, 1));
}

int nvmlDeviceGetSupportedClocksEventReasons(void *device, unsigned long long *reasons) {
    DEVICE(nvmlDeviceGetSupportedClocksEventReasons, device);
    WHOLE_GPU_ONLY();
    RETURN(ull_member(gpu, "supported_clocks_event_reasons", reasons, 1));
}

int nvmlDeviceGetSupportedClocksThrottleReasons(void *device, unsigned long long *reasons) {
    DEVICE(nvmlDeviceGetSupportedClocksThrottleReasons, device);
    WHOLE_GPU_ONLY();
    RETURN(ull_member(gpu, "supported_clocks_event_reasons", reasons, 1));
}

int nvmlDeviceGetTotalEccErrors(void *device, unsigned int errorType, unsigned int counterType, unsigned long long *count) {
    DEVICE(nvmlDeviceGetTotalEccErrors, device);
    WHOLE_GPU_ONLY();
    if (errorType > 1 || counterType > 1) RETURN(VIGIL_NVML_ERROR_INVALID_ARGUMENT);
    const char *keys[2][2] = {{"corrected_volatile", "corrected_aggregate"}, {"uncorrected_volatile", "uncorrected_aggregate"}};
    RETURN(ull_member(fj_get(gpu, "ecc"), keys[errorType][counterType], count, 1));
}

int nvmlDeviceGetRemappedRows(void *device, unsigned int *corrected, unsigned int *uncorrected,
                              unsigned int *pending, unsigned int *failure) {
    DEVICE(nvmlDeviceGetRemappedRows, device);
    WHOLE_GPU_ONLY();
    const fj_node *rows = fj_get(gpu, "remapped_rows");
    int rc = uint_member(rows, "correctable", corrected, 1);
    if (!rc) rc = uint_member(rows, "uncorrectable", uncorrected, 1);
    if (!rc) rc = uint_member(rows, "pending", pending, 1);
    if (!rc) rc = uint_member(rows, "failure", failure, 1);
    RETURN(rc);
}

int nvmlDeviceGetCurrPcieLinkGeneration(void *device, unsigned int *generation) {
    DEVICE(nvmlDeviceGetCurrPcieLinkGeneration, device);
    WHOLE_GPU_ONLY();
    RETURN(uint_member(fj_get(gpu, "pcie"), "generation", generation, 1));
}

int nvmlDeviceGetCurrPcieLinkWidth(void *device, unsigned int *width) {
    DEVICE(nvmlDeviceGetCurrPcieLinkWidth, device);
    WHOLE_GPU_ONLY();
    RETURN(uint_member(fj_get(gpu, "pcie"), "width", width, 1));
}

int nvmlDeviceGetPcieThroughput(void *device, unsigned int counter, unsigned int *kilobytesPerSecond) {
    DEVICE(nvmlDeviceGetPcieThroughput, device);
    WHOLE_GPU_ONLY();
    if (counter > 1) RETURN(VIGIL_NVML_ERROR_INVALID_ARGUMENT);
    RETURN(uint_member(fj_get(gpu, "pcie"), counter == 0 ? "tx_kb_per_second" : "rx_kb_per_second", kilobytesPerSecond, 1));
}

/* Cumulative PCIe byte counters (fields 197/198) from "pcie": {"tx_bytes", "rx_bytes"}; other fields
 * answer NOT_SUPPORTED in their own entry, as the driver does. */
int nvmlDeviceGetFieldValues(void *device, int count, vigil_nvml_field_value *values) {
    DEVICE(nvmlDeviceGetFieldValues, device);
    WHOLE_GPU_ONLY();
    if (count < 0 || (count > 0 && !values)) RETURN(VIGIL_NVML_ERROR_INVALID_ARGUMENT);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    for (int i = 0; i < count; i++) {
        vigil_nvml_field_value *field = &values[i];
        const char *key = field->fieldId == VIGIL_NVML_FI_DEV_PCIE_COUNT_TX_BYTES ? "tx_bytes"
                        : field->fieldId == VIGIL_NVML_FI_DEV_PCIE_COUNT_RX_BYTES ? "rx_bytes" : NULL;
        double value;
        field->timestamp = (long long)now.tv_sec * 1000000 + now.tv_nsec / 1000;
        field->latencyUsec = 0;
        if (!key || !member(fj_get(gpu, "pcie"), key, &value)) {
            field->nvmlReturn = VIGIL_NVML_ERROR_NOT_SUPPORTED;
            continue;
        }
        field->nvmlReturn = VIGIL_NVML_SUCCESS;
        field->valueType = 3;
        field->value.ullVal = (unsigned long long)value;
    }
    RETURN(VIGIL_NVML_SUCCESS);
}

int nvmlDeviceGetMigMode(void *device, unsigned int *current, unsigned int *pending) {
    DEVICE(nvmlDeviceGetMigMode, device);
    WHOLE_GPU_ONLY();
    const fj_node *config = fj_get(gpu, "mig");
    if (!config) RETURN(VIGIL_NVML_ERROR_NOT_SUPPORTED);
    int rc = uint_member(config, "mode", current, 1);
    if (!rc && pending) {
        if (fj_get(config, "pending")) rc = uint_member(config, "pending", pending, 1);
        else *pending = *current;
    }
    RETURN(rc);
}

int nvmlDeviceGetMaxMigDeviceCount(void *device, unsigned int *count_out) {
    DEVICE(nvmlDeviceGetMaxMigDeviceCount, device);
    WHOLE_GPU_ONLY();
    const fj_node *config = fj_get(gpu, "mig");
    if (!config) RETURN(VIGIL_NVML_ERROR_NOT_SUPPORTED);
    if (!count_out) RETURN(VIGIL_NVML_ERROR_INVALID_ARGUMENT);
    double max = 7;
    member(config, "max_devices", &max);
    *count_out = (unsigned int)(max > MAX_MIG ? MAX_MIG : max);
    RETURN(VIGIL_NVML_SUCCESS);
}

int nvmlDeviceGetMigDeviceHandleByIndex(void *device, unsigned int index, void **migDevice) {
    DEVICE(nvmlDeviceGetMigDeviceHandleByIndex, device);
    WHOLE_GPU_ONLY();
    const fj_node *config = fj_get(gpu, "mig");
    if (!config) RETURN(VIGIL_NVML_ERROR_NOT_SUPPORTED);
    if (!migDevice || index >= MAX_MIG) RETURN(VIGIL_NVML_ERROR_INVALID_ARGUMENT);
    if (!mig_enabled(gpu) || (int)index >= fj_length(fj_get(config, "instances"))) RETURN(VIGIL_NVML_ERROR_NOT_FOUND);
    int parent = ((fake_device *)device)->gpu;
    mig_handles[parent][index].gpu = parent;
    mig_handles[parent][index].slot = (int)index;
    *migDevice = &mig_handles[parent][index];
    RETURN(VIGIL_NVML_SUCCESS);
}

int nvmlDeviceIsMigDeviceHandle(void *device, unsigned int *isMig) {
    DEVICE(nvmlDeviceIsMigDeviceHandle, device);
    if (!isMig) RETURN(VIGIL_NVML_ERROR_INVALID_ARGUMENT);
    *isMig = mig != NULL;
    RETURN(VIGIL_NVML_SUCCESS);
}

int nvmlDeviceGetGpuInstanceId(void *device, unsigned int *id) {
    DEVICE(nvmlDeviceGetGpuInstanceId, device);
    if (!mig) RETURN(VIGIL_NVML_ERROR_INVALID_ARGUMENT);
    RETURN(uint_member(mig, "gpu_instance", id, 1));
}

int nvmlDeviceGetComputeInstanceId(void *device, unsigned int *id) {
    DEVICE(nvmlDeviceGetComputeInstanceId, device);
    if (!mig) RETURN(VIGIL_NVML_ERROR_INVALID_ARGUMENT);
    RETURN(uint_member(mig, "compute_instance", id, 1));
}

/* ---- processes -------------------------------------------------------------------------------- */

enum { LIST_COMPUTE = 0, LIST_GRAPHICS = 1, LIST_MPS = 2 };

static int on_list(const fj_node *process, int list) {
    const char *type = fj_string(process, "type", "compute");
    switch (list) {
    case LIST_COMPUTE: return strcmp(type, "compute") == 0 || strcmp(type, "compute+graphics") == 0;
    case LIST_GRAPHICS: return strcmp(type, "graphics") == 0 || strcmp(type, "compute+graphics") == 0;
    default: return strcmp(type, "mps") == 0;
    }
}

static unsigned int process_pid(const fj_node *process) {
    const fj_node *pid = fj_get(process, "pid");
    if (pid && pid->type == FJ_STRING && strcmp(pid->string, "self") == 0) return (unsigned int)getpid();
    double value = 0;
    number(pid, &value);
    return (unsigned int)value;
}

/* Writes the GPU's processes of one list as records of `stride` bytes (16, 24 or 32), with NVML's
 * size protocol: too small a buffer gets INSUFFICIENT_SIZE and the count needed. */
static int processes(const fj_node *gpu, const fj_node *mig, int list, size_t stride, unsigned int *count_io, unsigned char *records) {
    if (!count_io) return VIGIL_NVML_ERROR_INVALID_ARGUMENT;
    if (mig) { *count_io = 0; return VIGIL_NVML_SUCCESS; }
    const fj_node *all = fj_get(gpu, "processes");
    unsigned int needed = 0;
    for (int i = 0; i < fj_length(all); i++) needed += (unsigned int)on_list(fj_at(all, i), list);
    if (*count_io < needed || (needed > 0 && !records)) {
        *count_io = needed;
        return VIGIL_NVML_ERROR_INSUFFICIENT_SIZE;
    }
    unsigned int n = 0;
    for (int i = 0; i < fj_length(all); i++) {
        const fj_node *process = fj_at(all, i);
        if (!on_list(process, list)) continue;
        unsigned char *record = records + stride * n++;
        memset(record, 0, stride);
        unsigned int pid = process_pid(process);
        double used = -1, gi = -1, ci = -1;
        member(process, "used_memory", &used);
        member(process, "gpu_instance", &gi);
        member(process, "compute_instance", &ci);
        unsigned long long used_bytes = used < 0 ? VIGIL_NVML_VALUE_NOT_AVAILABLE_ULL : (unsigned long long)used;
        unsigned int gi_value = gi < 0 ? 0xFFFFFFFFu : (unsigned int)gi, ci_value = ci < 0 ? 0xFFFFFFFFu : (unsigned int)ci;
        memcpy(record, &pid, 4);
        memcpy(record + 8, &used_bytes, 8);
        if (stride >= 24) {
            memcpy(record + 16, &gi_value, 4);
            memcpy(record + 20, &ci_value, 4);
        }
    }
    *count_io = n;
    return VIGIL_NVML_SUCCESS;
}

static size_t v3_stride(void) {
    double size = 24;
    member(scenario, "process_record_size", &size);
    return size == 32 ? 32 : 24;
}

int nvmlDeviceGetComputeRunningProcesses_v3(void *device, unsigned int *n, void *infos) {
    DEVICE(nvmlDeviceGetComputeRunningProcesses_v3, device);
    RETURN(processes(gpu, mig, LIST_COMPUTE, v3_stride(), n, infos));
}

int nvmlDeviceGetComputeRunningProcesses_v2(void *device, unsigned int *n, void *infos) {
    DEVICE(nvmlDeviceGetComputeRunningProcesses_v2, device);
    RETURN(processes(gpu, mig, LIST_COMPUTE, 24, n, infos));
}

int nvmlDeviceGetComputeRunningProcesses(void *device, unsigned int *n, void *infos) {
    DEVICE(nvmlDeviceGetComputeRunningProcesses, device);
    RETURN(processes(gpu, mig, LIST_COMPUTE, 16, n, infos));
}

int nvmlDeviceGetGraphicsRunningProcesses_v3(void *device, unsigned int *n, void *infos) {
    DEVICE(nvmlDeviceGetGraphicsRunningProcesses_v3, device);
    RETURN(processes(gpu, mig, LIST_GRAPHICS, v3_stride(), n, infos));
}

int nvmlDeviceGetGraphicsRunningProcesses_v2(void *device, unsigned int *n, void *infos) {
    DEVICE(nvmlDeviceGetGraphicsRunningProcesses_v2, device);
    RETURN(processes(gpu, mig, LIST_GRAPHICS, 24, n, infos));
}

int nvmlDeviceGetGraphicsRunningProcesses(void *device, unsigned int *n, void *infos) {
    DEVICE(nvmlDeviceGetGraphicsRunningProcesses, device);
    RETURN(processes(gpu, mig, LIST_GRAPHICS, 16, n, infos));
}

int nvmlDeviceGetMPSComputeRunningProcesses_v3(void *device, unsigned int *n, void *infos) {
    DEVICE(nvmlDeviceGetMPSComputeRunningProcesses_v3, device);
    RETURN(processes(gpu, mig, LIST_MPS, v3_stride(), n, infos));
}

int nvmlDeviceGetRunningProcessDetailList(void *device, vigil_nvml_process_detail_list_v1 *list) {
    DEVICE(nvmlDeviceGetRunningProcessDetailList, device);
    if (!list) RETURN(VIGIL_NVML_ERROR_INVALID_ARGUMENT);
    if (list->version != VIGIL_NVML_PROCESS_DETAIL_LIST_V1_VERSION) RETURN(VIGIL_NVML_ERROR_ARGUMENT_VERSION_MISMATCH);
    if (list->mode > 2) RETURN(VIGIL_NVML_ERROR_INVALID_ARGUMENT);
    RETURN(processes(gpu, mig, (int)list->mode, sizeof(vigil_nvml_process_detail_v1), &list->numProcArrayEntries,
                     (unsigned char *)list->procArray));
}

int nvmlDeviceGetConfComputeMemSizeInfo(void *device, void *info) {
    (void)info;
    DEVICE(nvmlDeviceGetConfComputeMemSizeInfo, device);
    RETURN(VIGIL_NVML_ERROR_NOT_SUPPORTED);
}

/* ---- events ----------------------------------------------------------------------------------- */

static unsigned long long event_bit(const char *type) {
    if (strcmp(type, "single_bit_ecc") == 0) return VIGIL_NVML_EVENT_SINGLE_BIT_ECC;
    if (strcmp(type, "double_bit_ecc") == 0) return VIGIL_NVML_EVENT_DOUBLE_BIT_ECC;
    if (strcmp(type, "pstate") == 0) return VIGIL_NVML_EVENT_PSTATE;
    if (strcmp(type, "mig_config_change") == 0) return VIGIL_NVML_EVENT_MIG_CONFIG_CHANGE;
    if (strcmp(type, "gpu_unavailable") == 0) return VIGIL_NVML_EVENT_GPU_UNAVAILABLE;
    return VIGIL_NVML_EVENT_XID;
}

static unsigned long long supported_events(const fj_node *gpu) {
    double value;
    if (member(gpu, "supported_events", &value)) return (unsigned long long)value;
    unsigned long long mask = VIGIL_NVML_EVENT_XID | VIGIL_NVML_EVENT_SINGLE_BIT_ECC | VIGIL_NVML_EVENT_DOUBLE_BIT_ECC | VIGIL_NVML_EVENT_PSTATE;
    if (fj_get(gpu, "mig")) mask |= VIGIL_NVML_EVENT_MIG_CONFIG_CHANGE;
    return mask;
}

int nvmlEventSetCreate(void **set) {
    BEGIN(nvmlEventSetCreate);
    if (!initialized) RETURN(VIGIL_NVML_ERROR_UNINITIALIZED);
    if (!set) RETURN(VIGIL_NVML_ERROR_INVALID_ARGUMENT);
    *set = calloc(1, sizeof(fake_event_set));
    RETURN(*set ? VIGIL_NVML_SUCCESS : VIGIL_NVML_ERROR_UNKNOWN);
}

int nvmlDeviceGetSupportedEventTypes(void *device, unsigned long long *types) {
    DEVICE(nvmlDeviceGetSupportedEventTypes, device);
    WHOLE_GPU_ONLY();
    if (!types) RETURN(VIGIL_NVML_ERROR_INVALID_ARGUMENT);
    *types = supported_events(gpu);
    RETURN(VIGIL_NVML_SUCCESS);
}

int nvmlDeviceRegisterEvents(void *device, unsigned long long types, void *set) {
    DEVICE(nvmlDeviceRegisterEvents, device);
    WHOLE_GPU_ONLY();
    if (!set) RETURN(VIGIL_NVML_ERROR_INVALID_ARGUMENT);
    if (types & ~supported_events(gpu)) RETURN(VIGIL_NVML_ERROR_NOT_SUPPORTED);
    fake_event_set *events = set;
    int index = ((fake_device *)device)->gpu;
    events->registered[index] |= types;
    /* Events that happened before registration are lost, as with the driver. */
    events->delivered[index] = fj_length(fj_get(gpu, "events"));
    RETURN(VIGIL_NVML_SUCCESS);
}

/* The next undelivered event for a device registered in the set, if any. Called with the lock held. */
static int next_event(fake_event_set *set, vigil_nvml_event_data *data) {
    for (int g = 0; g < gpu_count(); g++) {
        if (!set->registered[g]) continue;
        const fj_node *gpu = fj_at(gpus(), g);
        const fj_node *list = fj_get(gpu, "events");
        while (set->delivered[g] < fj_length(list)) {
            const fj_node *event = fj_at(list, set->delivered[g]++);
            unsigned long long bit = event_bit(fj_string(event, "type", "xid"));
            if (!(set->registered[g] & bit)) continue;
            double value = bit == VIGIL_NVML_EVENT_XID ? 999 : 0, gi = -1, ci = -1;
            member(event, "xid", &value);
            member(event, "data", &value);
            member(event, "gpu_instance", &gi);
            member(event, "compute_instance", &ci);
            gpu_handles[g].gpu = g;
            gpu_handles[g].slot = -1;
            data->device = &gpu_handles[g];
            data->eventType = bit;
            data->eventData = (unsigned long long)value;
            data->gpuInstanceId = gi < 0 ? 0xFFFFFFFFu : (unsigned int)gi;
            data->computeInstanceId = ci < 0 ? 0xFFFFFFFFu : (unsigned int)ci;
            return 1;
        }
        /* A scenario rewritten with fewer events starts counting again from its end. */
        if (set->delivered[g] > fj_length(list)) set->delivered[g] = fj_length(list);
    }
    return 0;
}

static int wait_event(void *set, vigil_nvml_event_data *data, unsigned int timeout_ms) {
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        pthread_mutex_lock(&lock);
        reload_if_changed();
        if (!initialized) { pthread_mutex_unlock(&lock); return VIGIL_NVML_ERROR_UNINITIALIZED; }
        if (!set || !data) { pthread_mutex_unlock(&lock); return VIGIL_NVML_ERROR_INVALID_ARGUMENT; }
        int found = next_event(set, data);
        pthread_mutex_unlock(&lock);
        if (found) return VIGIL_NVML_SUCCESS;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long elapsed = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (elapsed >= (long)timeout_ms) return VIGIL_NVML_ERROR_TIMEOUT;
        long slice = (long)timeout_ms - elapsed < 10 ? (long)timeout_ms - elapsed : 10;
        struct timespec pause = { 0, slice * 1000000L };
        nanosleep(&pause, NULL);
    }
}

int nvmlEventSetWait_v2(void *set, vigil_nvml_event_data *data, unsigned int timeout_ms) {
    pthread_mutex_lock(&lock);
    call_counts[ID_nvmlEventSetWait_v2]++;
    pthread_mutex_unlock(&lock);
    return wait_event(set, data, timeout_ms);
}

int nvmlEventSetWait(void *set, vigil_nvml_event_data *data, unsigned int timeout_ms) {
    pthread_mutex_lock(&lock);
    call_counts[ID_nvmlEventSetWait]++;
    pthread_mutex_unlock(&lock);
    return wait_event(set, data, timeout_ms);
}

int nvmlEventSetFree(void *set) {
    BEGIN(nvmlEventSetFree);
    free(set);
    RETURN(VIGIL_NVML_SUCCESS);
}

/* ---- fake-only -------------------------------------------------------------------------------- */

unsigned long vigil_fake_nvml_calls(const char *name) {
    unsigned long calls = 0;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < ID_COUNT; i++) {
        if (name && strcmp(export_names[i], name) == 0) calls = call_counts[i];
    }
    pthread_mutex_unlock(&lock);
    return calls;
}

const char *vigil_fake_nvml_scenario(void) { return scenario_path; }

/* ---- loading ---------------------------------------------------------------------------------- */

typedef struct {
    ElfW(Addr) base;
    const char *strtab;
    size_t strsz;
    const ElfW(Phdr) *phdr;
    int phnum;
} own_image;

static int find_own_image(struct dl_phdr_info *info, size_t size, void *context) {
    (void)size;
    own_image *image = context;
    if (info->dlpi_addr != image->base) return 0;
    image->phdr = info->dlpi_phdr;
    image->phnum = info->dlpi_phnum;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        if (info->dlpi_phdr[i].p_type != PT_DYNAMIC) continue;
        const ElfW(Dyn) *dyn = (const ElfW(Dyn) *)(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
        for (; dyn->d_tag != DT_NULL; dyn++) {
            if (dyn->d_tag == DT_STRTAB) {
                ElfW(Addr) address = dyn->d_un.d_ptr;
                /* glibc relocates the dynamic section in place on most architectures; not on all. */
                if (address < info->dlpi_addr) address += info->dlpi_addr;
                image->strtab = (const char *)address;
            } else if (dyn->d_tag == DT_STRSZ) {
                image->strsz = dyn->d_un.d_val;
            }
        }
        return 1;
    }
    return 0;
}

/* Makes dlsym fail for `name` by changing its entry in this library's dynamic string table: the
 * lookup compares names after the hash, so the symbol is there but can no longer be found. */
static void hide_symbol(const own_image *image, const char *name) {
    size_t length = strlen(name);
    for (size_t at = 1; at + length < image->strsz; at++) {
        if (image->strtab[at - 1] != '\0' || memcmp(image->strtab + at, name, length + 1) != 0) continue;
        char *target = (char *)image->strtab + at;
        long page = sysconf(_SC_PAGESIZE);
        uintptr_t start = (uintptr_t)target & ~(uintptr_t)(page - 1);
        int protection = PROT_READ;
        for (int i = 0; i < image->phnum; i++) {
            const ElfW(Phdr) *segment = &image->phdr[i];
            uintptr_t from = image->base + segment->p_vaddr;
            if (segment->p_type == PT_LOAD && start >= (from & ~(uintptr_t)(page - 1)) && start < from + segment->p_memsz) {
                protection = ((segment->p_flags & PF_R) ? PROT_READ : 0) | ((segment->p_flags & PF_W) ? PROT_WRITE : 0)
                           | ((segment->p_flags & PF_X) ? PROT_EXEC : 0);
            }
        }
        size_t span = ((uintptr_t)target + length + 1 - start + (size_t)page - 1) & ~((size_t)page - 1);
        if (mprotect((void *)start, span, protection | PROT_WRITE) != 0) {
            fprintf(stderr, "vigil fake NVML: cannot hide %s: %s\n", name, strerror(errno));
            return;
        }
        target[0] = '!';
        mprotect((void *)start, span, protection);
        return;
    }
    fprintf(stderr, "vigil fake NVML: missing_symbols names %s, which this library does not export\n", name);
}

__attribute__((constructor)) static void load_scenario(void) {
    Dl_info self;
    const char *configured = getenv("VIGIL_FAKE_NVML_CONFIG");
    if (configured && configured[0]) {
        snprintf(scenario_path, sizeof scenario_path, "%s", configured);
    } else if (dladdr((void *)&load_scenario, &self) && self.dli_fname) {
        const char *slash = strrchr(self.dli_fname, '/');
        int directory = slash ? (int)(slash - self.dli_fname) : 1;
        snprintf(scenario_path, sizeof scenario_path, "%.*s/fake-nvml.json", directory, slash ? self.dli_fname : ".");
    }
    reload_if_changed();
    const fj_node *missing = fj_get(scenario, "missing_symbols");
    if (fj_length(missing) == 0 || !dladdr((void *)&load_scenario, &self)) return;
    own_image image = { (ElfW(Addr))self.dli_fbase, NULL, 0, NULL, 0 };
    dl_iterate_phdr(find_own_image, &image);
    if (!image.strtab) {
        fprintf(stderr, "vigil fake NVML: cannot find its own dynamic string table; missing_symbols ignored\n");
        return;
    }
    for (int i = 0; i < fj_length(missing); i++) {
        const fj_node *name = fj_at(missing, i);
        if (name->type == FJ_STRING) hide_symbol(&image, name->string);
    }
}
