/* The healer's audit hook, in C: Python calls an audit hook for every audit event of the process
 * (about 70,000 while the HF stack imports: open, import, compile, object.__getattr__, ...), and a
 * hook written in Python costs a Python call for each. This one returns at once for every event but
 * "exec", and hands those to the healer's Python hook (odin_compat._heal._audit), called as CPython
 * calls a Python hook: with tracing off (so profilers do not see it), and an exception it raises
 * propagates to the caller of exec. Where this module was not built, _heal installs that Python
 * hook itself, with the same behaviour. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

static PyObject *on_exec = NULL; /* the Python hook; kept for the life of the process */
static PyObject *exec_event = NULL;

static int
hook(const char *event, PyObject *args, void *data)
{
    (void)data;
    if (event[0] != 'e' || strcmp(event, "exec") != 0) {
        return 0;
    }
    PyThreadState *ts = PyThreadState_Get();
    PyThreadState_EnterTracing(ts);
    PyObject *result = PyObject_CallFunctionObjArgs(on_exec, exec_event, args, NULL);
    PyThreadState_LeaveTracing(ts);
    if (result == NULL) {
        return -1;
    }
    Py_DECREF(result);
    return 0;
}

static PyObject *
install(PyObject *module, PyObject *callable)
{
    (void)module;
    if (on_exec != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the exec hook is already installed");
        return NULL;
    }
    if (!PyCallable_Check(callable)) {
        PyErr_SetString(PyExc_TypeError, "install() takes a callable");
        return NULL;
    }
    exec_event = PyUnicode_InternFromString("exec");
    if (exec_event == NULL) {
        return NULL;
    }
    Py_INCREF(callable);
    on_exec = callable;
    /* As with sys.addaudithook, a hook already in place may refuse this one (silently, by raising an
     * Exception on "sys.addaudithook"); any other error is raised here. */
    if (PySys_AddAuditHook(hook, NULL) < 0) {
        Py_CLEAR(on_exec);
        Py_CLEAR(exec_event);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"install", install, METH_O,
     "install(callable): call callable(\"exec\", args) for each exec audit event of the process, "
     "and for no other event. Once per process; it cannot be removed."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "odin_compat._audit", "The healer's audit hook, in C.", -1, methods,
};

PyMODINIT_FUNC
PyInit__audit(void)
{
    return PyModule_Create(&module_def);
}
