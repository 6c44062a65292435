#ifndef SHIPYARD_CCURL_SHIM_H
#define SHIPYARD_CCURL_SHIM_H
#include <curl/curl.h>

/* curl_easy_setopt and curl_easy_getinfo are variadic, which Swift cannot call: one fixed-arity
   wrapper per argument type. */
static inline CURLcode shipyard_curl_set_long(CURL *curl, CURLoption option, long value) {
    return curl_easy_setopt(curl, option, value);
}

static inline CURLcode shipyard_curl_set_string(CURL *curl, CURLoption option, const char *value) {
    return curl_easy_setopt(curl, option, value);
}

static inline CURLcode shipyard_curl_set_pointer(CURL *curl, CURLoption option, void *value) {
    return curl_easy_setopt(curl, option, value);
}

static inline CURLcode shipyard_curl_set_slist(CURL *curl, CURLoption option, struct curl_slist *value) {
    return curl_easy_setopt(curl, option, value);
}

typedef size_t (*shipyard_curl_write_callback)(char *data, size_t size, size_t count, void *context);

static inline CURLcode shipyard_curl_set_write(CURL *curl, shipyard_curl_write_callback callback, void *context) {
    CURLcode rc = curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, callback);
    if (rc != CURLE_OK) return rc;
    return curl_easy_setopt(curl, CURLOPT_WRITEDATA, context);
}

static inline CURLcode shipyard_curl_set_write_header(CURL *curl, shipyard_curl_write_callback callback, void *context) {
    CURLcode rc = curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, callback);
    if (rc != CURLE_OK) return rc;
    return curl_easy_setopt(curl, CURLOPT_HEADERDATA, context);
}

static inline CURLcode shipyard_curl_get_long(CURL *curl, CURLINFO info, long *value) {
    return curl_easy_getinfo(curl, info, value);
}

static inline CURLcode shipyard_curl_get_string(CURL *curl, CURLINFO info, char **value) {
    return curl_easy_getinfo(curl, info, value);
}
#endif
