# Installs the libraries, headers and CLI, and exports olympus:: targets for find_package.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/olympus
    DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
if(TARGET olympus-voice)
    install(TARGETS olympus-voice RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()
get_property(OLYMPUS_EXPORTED_TARGETS GLOBAL PROPERTY OLYMPUS_EXPORTED_TARGETS)
install(TARGETS ${OLYMPUS_EXPORTED_TARGETS} olympus_websocketpp EXPORT olympus-targets
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
    INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT olympus-targets NAMESPACE olympus::
    DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/olympus)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/olympus-config.cmake.in
    ${PROJECT_BINARY_DIR}/olympus-config.cmake
    INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/olympus)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/olympus-config-version.cmake
    COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/olympus-config.cmake
    ${PROJECT_BINARY_DIR}/olympus-config-version.cmake
    DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/olympus)
